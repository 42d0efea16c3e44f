//! Benchmarks over the real socket: server-side apply throughput (keep-alive connections,
//! several in parallel) and watch fan-out (many watchers, each must see every write).
//! Run: `cargo bench -p kubesim --bench apply`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Conn {
    r: BufReader<TcpStream>,
    addr: SocketAddr,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        Conn {
            r: BufReader::new(s),
            addr,
        }
    }

    /// One request/response on the kept-alive connection; returns the status code.
    async fn request(&mut self, method: &str, path: &str, content_type: &str, body: &[u8]) -> u16 {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        );
        let mut msg = head.into_bytes();
        msg.extend_from_slice(body);
        self.r.get_mut().write_all(&msg).await.unwrap();
        let mut line = String::new();
        self.r.read_line(&mut line).await.unwrap();
        let status = line.split_whitespace().nth(1).unwrap().parse().unwrap();
        let mut len = 0;
        loop {
            line.clear();
            self.r.read_line(&mut line).await.unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).await.unwrap();
        status
    }
}

fn cm(name: &str, round: usize) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "bench"}},
        "data": {"round": round.to_string(), "payload": "x".repeat(200)}
    }))
    .unwrap()
}

async fn apply_throughput(addr: SocketAddr, conns: usize, per_conn: usize) -> f64 {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..conns {
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            for i in 0..per_conn {
                // Half the applies create, half change an existing object.
                let name = format!("cm-{c}-{}", i % (per_conn / 2).max(1));
                let path = format!(
                    "/api/v1/namespaces/default/configmaps/{name}?fieldManager=bench&force=true"
                );
                let status = conn
                    .request(
                        "PATCH",
                        &path,
                        "application/apply-patch+yaml",
                        &cm(&name, i),
                    )
                    .await;
                assert!(status == 200 || status == 201, "status {status}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (conns * per_conn) as f64 / start.elapsed().as_secs_f64()
}

async fn watch_fan_out(addr: SocketAddr, watchers: usize, writes: usize) -> Duration {
    let mut streams = Vec::new();
    for _ in 0..watchers {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /api/v1/namespaces/fan/configmaps?watch=true&resourceVersion=0 HTTP/1.1\r\nHost: {addr}\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        streams.push(BufReader::new(s));
    }
    let start = Instant::now();
    let readers: Vec<_> = streams
        .into_iter()
        .map(|mut r| {
            tokio::spawn(async move {
                let mut seen = 0;
                let mut line = String::new();
                while seen < writes {
                    line.clear();
                    if r.read_line(&mut line).await.unwrap() == 0 {
                        break;
                    }
                    seen += line.matches("\"type\":\"ADDED\"").count();
                }
                seen
            })
        })
        .collect();
    let mut conn = Conn::open(addr).await;
    for i in 0..writes {
        let name = format!("w-{i}");
        let path = format!("/api/v1/namespaces/fan/configmaps/{name}?fieldManager=bench");
        conn.request(
            "PATCH",
            &path,
            "application/apply-patch+yaml",
            &cm(&name, i),
        )
        .await;
    }
    for r in readers {
        assert_eq!(r.await.unwrap(), writes);
    }
    start.elapsed()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cluster = kubesim::Cluster::start(kubesim::Config { nodes: 1, ..kubesim::Config::default() }).await.unwrap();
        let addr = cluster.addr();
        apply_throughput(addr, 2, 200).await; // warm-up
        for conns in [1, 4, 8] {
            let rate = apply_throughput(addr, conns, 2000 / conns).await;
            println!("server-side apply, {conns} connection(s): {rate:.0} applies/s");
        }
        let mut c = Conn::open(addr).await;
        let ns = br#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"fan"}}"#;
        c.request("POST", "/api/v1/namespaces", "application/json", ns).await;
        let (watchers, writes) = (100, 500);
        let took = watch_fan_out(addr, watchers, writes).await;
        println!(
            "watch fan-out: {writes} writes to {watchers} watchers in {:.3}s ({:.0} events delivered/s)",
            took.as_secs_f64(),
            (watchers * writes) as f64 / took.as_secs_f64()
        );
        let counts = cluster.request_count();
        println!("requests: {} reads, {} writes", counts.reads(), counts.writes());
        cluster.shutdown().await;
    });
}
