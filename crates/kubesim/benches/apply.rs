//! Benchmarks over the real socket: server-side apply throughput (keep-alive connections,
//! several in parallel), watch fan-out (many watchers, each must see every write) and
//! "controllers settle" (ConfigMaps, Services and Deployments applied through the API, then
//! the time until the controller driver is idle: `Cluster::settle`).
//! Run: `cargo bench -p kubesim --bench apply` (all cases) or
//! `cargo bench -p kubesim --bench apply -- settle` (only the settle cases).

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

/// One object of the settle workload: `i % 3` picks a ConfigMap, a Service or a Deployment;
/// every other Deployment has 1 replica, the rest 0. Returns (API path, body).
fn workload_object(ns: &str, i: usize) -> (String, Vec<u8>) {
    let n = i / 3;
    let app = format!("app-{n}");
    let (path, obj) = match i % 3 {
        0 => (
            format!("/api/v1/namespaces/{ns}/configmaps/cm-{n}"),
            serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("cm-{n}"), "labels": {"app": app}},
                "data": {"payload": "x".repeat(200)}
            }),
        ),
        1 => (
            format!("/api/v1/namespaces/{ns}/services/svc-{n}"),
            serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{n}"), "labels": {"app": app}},
                "spec": {"selector": {"app": app}, "ports": [{"port": 80, "targetPort": 8080}]}
            }),
        ),
        _ => (
            format!("/apis/apps/v1/namespaces/{ns}/deployments/web-{n}"),
            serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": format!("web-{n}"), "labels": {"app": app}},
                "spec": {
                    "replicas": i32::from(n.is_multiple_of(2)),
                    "selector": {"matchLabels": {"app": app}},
                    "template": {
                        "metadata": {"labels": {"app": app}},
                        "spec": {"containers": [{"name": "web", "image": "nginx:1.27", "ports": [{"containerPort": 8080}]}]}
                    }
                }
            }),
        ),
    };
    (
        format!("{path}?fieldManager=bench&force=true"),
        serde_json::to_vec(&obj).unwrap(),
    )
}

/// Applies `per_ns` objects into each of `namespaces` namespaces over `conns` connections,
/// then waits for `settle`. Returns (apply wall time, time from the end of the applies until
/// settle returned, or `None` when it timed out after 600 s).
async fn controllers_settle(
    cluster: &kubesim::Cluster,
    namespaces: usize,
    per_ns: usize,
    conns: usize,
) -> (Duration, Option<Duration>) {
    let addr = cluster.addr();
    let names: Vec<String> = (0..namespaces).map(|i| format!("settle-{i}")).collect();
    let mut c = Conn::open(addr).await;
    for ns in &names {
        let body = serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}
        }))
        .unwrap();
        let status = c
            .request("POST", "/api/v1/namespaces", "application/json", &body)
            .await;
        assert_eq!(status, 201);
    }
    assert!(cluster.settle(Duration::from_secs(60)).await);
    let work: Vec<(String, Vec<u8>)> = names
        .iter()
        .flat_map(|ns| (0..per_ns).map(move |i| workload_object(ns, i)))
        .collect();
    let work = std::sync::Arc::new(work);
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (work, next) = (work.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::open(addr).await;
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((path, body)) = work.get(i) else {
                    break;
                };
                let status = conn
                    .request("PATCH", path, "application/apply-patch+yaml", body)
                    .await;
                assert!(status == 200 || status == 201, "status {status} for {path}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let applied = start.elapsed();
    let settle_start = Instant::now();
    let settled = cluster.settle(Duration::from_secs(600)).await;
    (applied, settled.then(|| settle_start.elapsed()))
}

async fn settle_cases() {
    for (namespaces, per_ns) in [(1, 1000), (3, 333)] {
        let cluster = kubesim::Cluster::start(kubesim::Config::default())
            .await
            .unwrap();
        let (applied, settled) = controllers_settle(&cluster, namespaces, per_ns, 8).await;
        let total = namespaces * per_ns;
        println!(
            "controllers settle, {namespaces} namespace(s) x {per_ns} objects, 8 connections: \
             apply {:.2}s ({:.0} applies/s), settle {:.2}s after the last apply (NaN: not within 600s)",
            applied.as_secs_f64(),
            total as f64 / applied.as_secs_f64(),
            settled.map_or(f64::NAN, |d| d.as_secs_f64())
        );
        cluster.shutdown().await;
    }
}

fn main() {
    let only_settle = std::env::args().skip(1).any(|a| a == "settle");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        if only_settle {
            settle_cases().await;
            return;
        }
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
        settle_cases().await;
    });
}
