//! A tiny HTTP/1.1 client over tokio TCP (no extra dependencies) and cluster fixtures.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

pub async fn cluster() -> kubesim::Cluster {
    kubesim::Cluster::start(kubesim::Config::default())
        .await
        .unwrap()
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

async fn read_head<R: AsyncBufReadExt + Unpin>(r: &mut R) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    let status: u16 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).await.unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').unwrap();
        headers.push((k.trim().to_owned(), v.trim().to_owned()));
    }
    (status, headers)
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
}

async fn read_chunk<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Option<Vec<u8>> {
    let mut line = String::new();
    if r.read_line(&mut line).await.ok()? == 0 {
        return None;
    }
    let size = usize::from_str_radix(line.trim(), 16).ok()?;
    let mut buf = vec![0; size + 2];
    r.read_exact(&mut buf).await.ok()?;
    buf.truncate(size);
    (size > 0).then_some(buf)
}

/// One request on a fresh connection.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&request_bytes(addr, method, path, headers, body, true))
        .await
        .unwrap();
    let mut r = BufReader::new(s);
    let (status, headers) = read_head(&mut r).await;
    let mut body = Vec::new();
    if is_chunked(&headers) {
        while let Some(c) = read_chunk(&mut r).await {
            body.extend(c);
        }
    } else {
        r.read_to_end(&mut body).await.unwrap();
    }
    Resp {
        status,
        headers,
        body,
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Resp {
    http(addr, "GET", path, &[], b"").await
}

pub async fn send_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &Value,
) -> Resp {
    http(
        addr,
        method,
        path,
        &[("Content-Type", content_type)],
        &serde_json::to_vec(body).unwrap(),
    )
    .await
}

pub async fn apply(addr: SocketAddr, path: &str, manager: &str, body: &Value) -> Resp {
    let path = format!("{path}?fieldManager={manager}");
    send_json(addr, "PATCH", &path, "application/apply-patch+yaml", body).await
}

/// A watch stream: yields one JSON event per line.
pub struct Watch {
    reader: BufReader<TcpStream>,
    pending: Vec<u8>,
    pub status: u16,
}

impl Watch {
    pub async fn open(addr: SocketAddr, path: &str) -> Watch {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&request_bytes(addr, "GET", path, &[], b"", true))
            .await
            .unwrap();
        let mut reader = BufReader::new(s);
        let (status, _) = read_head(&mut reader).await;
        Watch {
            reader,
            pending: Vec::new(),
            status,
        }
    }

    /// The next event, or `None` when the server closed the stream.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(pos) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=pos).collect();
                return Some(serde_json::from_slice(&line).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), read_chunk(&mut self.reader))
                .await
                .expect("watch event within 10s")?;
            self.pending.extend(chunk);
        }
    }

    /// The next event that is not a BOOKMARK.
    pub async fn next_change(&mut self) -> Option<Value> {
        loop {
            let e = self.next().await?;
            if e["type"] != "BOOKMARK" {
                return Some(e);
            }
        }
    }
}

pub fn configmap(name: &str, data: Value) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

pub fn deployment(name: &str, image: &str, replicas: i64) -> Value {
    serde_json::json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": name, "image": image}]}}
        }
    })
}
