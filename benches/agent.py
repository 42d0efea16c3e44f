#!/usr/bin/env python3
"""Agent measurements for docs/benchmarks.md: RSS of `kubesync run` idle and with 1,000 managed
objects, and commit-to-applied latency for a local repository (notify) and a polled remote
(file:// URL, `--interval`). Everything runs on this machine: kubesim via `kubesync cluster serve`
on 127.0.0.1, git repositories in a temp dir. Stdlib only.

Usage: cargo build --release && python3 benches/agent.py [--bin target/release/kubesync]
"""
import argparse, json, os, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

def git(repo, *args):
    subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True,
                   env={**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x",
                        "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"})

def configmap(name, value):
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"

def deployment(name):
    return (f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 0\n"
            f"  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n"
            f"        app: {name}\n    spec:\n      containers:\n      - name: app\n        image: nginx:1.25\n")

def make_repo(root, n, probe_init):
    os.makedirs(os.path.join(root, "m"))
    git(root, "init", "-q", "-b", "main")
    for i in range(n):
        body = deployment(f"d{i}") if i % 4 == 0 else configmap(f"c{i}", "v0")
        with open(os.path.join(root, "m", f"o{i:04}.yaml"), "w") as f:
            f.write(body)
    with open(os.path.join(root, "m", "probe.yaml"), "w") as f:
        f.write(configmap("probe", probe_init))
    git(root, "add", "-A"); git(root, "commit", "-q", "-m", "initial")

def api_get(url, path):
    try:
        with urllib.request.urlopen(url + path, timeout=2) as r:
            return json.load(r)
    except Exception:
        return None

def wait_for(cond, timeout, step=0.01):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return None

def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")

def run_agent(bin_, kubeconfig, repo, tmp, interval, name):
    port = free_port()
    log = open(os.path.join(tmp, f"agent-{name}.log"), "w")
    p = subprocess.Popen([bin_, "run", "--kubeconfig", kubeconfig, "--repo", repo, "--path", "m",
                          "--name", name, "--interval", interval, "--listen", f"127.0.0.1:{port}",
                          "--no-leader-election"], stdout=log, stderr=log,
                         env={**os.environ, "HOME": tmp}, cwd=tmp)
    return p, port

def probe_value(url):
    cm = api_get(url, "/api/v1/namespaces/default/configmaps/probe")
    return cm and cm.get("data", {}).get("value")

def latency(url, repo, trials):
    out = []
    for t in range(1, trials + 1):
        with open(os.path.join(repo, "m", "probe.yaml"), "w") as f:
            f.write(configmap("probe", str(t)))
        git(repo, "commit", "-q", "-am", f"probe {t}")
        start = time.monotonic()
        if not wait_for(lambda: probe_value(url) == str(t), 60):
            raise SystemExit(f"commit {t} not applied within 60s")
        out.append(time.monotonic() - start)
    return out

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/kubesync")
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=5)
    a = ap.parse_args()
    bin_ = os.path.abspath(a.bin)
    tmp = tempfile.mkdtemp(prefix="kubesync-agent-bench-")
    procs = []
    try:
        kc = os.path.join(tmp, "kubeconfig")
        sim = subprocess.Popen([bin_, "cluster", "serve", "--state", os.path.join(tmp, "state"),
                                "--listen", "127.0.0.1:0", "--kubeconfig-out", kc],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sim)
        if not wait_for(lambda: os.path.exists(kc) and os.path.getsize(kc) > 0, 10):
            raise SystemExit("kubesim did not start")
        url = next(l.split("server:")[1].strip() for l in open(kc) if "server:" in l)
        results = {}
        # Idle: one source with a single object.
        small = os.path.join(tmp, "small"); make_repo(small, 0, "small")
        p, _ = run_agent(bin_, kc, small, tmp, "1m", "small"); procs.append(p)
        wait_for(lambda: probe_value(url) == "small", 30)
        time.sleep(3)  # idle, on purpose: this is the measurement, not a wait for state
        results["rss_idle_mib"] = rss_mib(p.pid)
        p.terminate(); p.wait(10)
        # 1,000 managed objects, local repository (notify trigger).
        big = os.path.join(tmp, "big"); make_repo(big, a.objects, "big")
        p, _ = run_agent(bin_, kc, big, tmp, "1m", "big"); procs.append(p)
        t0 = time.monotonic()
        if not wait_for(lambda: probe_value(url) == "big", 120):
            raise SystemExit("first sync of the big repo did not land")
        results["first_sync_s"] = time.monotonic() - t0
        time.sleep(3)
        results["rss_1000_mib"] = rss_mib(p.pid)
        lat = latency(url, big, a.trials)
        results["local_latency_s"] = statistics.median(lat)
        results["rss_1000_after_commits_mib"] = rss_mib(p.pid)
        p.terminate(); p.wait(10)
        # Polled remote: file:// URL, 2s interval.
        p, _ = run_agent(bin_, kc, "file://" + big, tmp, "2s", "big"); procs.append(p)
        wait_for(lambda: probe_value(url) == str(a.trials), 60)
        lat = [x for x in latency(url, big, a.trials)]
        results["poll_2s_latency_s"] = statistics.median(lat)
        p.terminate(); p.wait(10)
        print(json.dumps(results, indent=2))
        print("\n| measurement | value |\n|---|---:|")
        print(f"| agent RSS, idle (1 object) | {results['rss_idle_mib']:.1f} MiB |")
        print(f"| agent RSS, {a.objects} managed objects | {results['rss_1000_mib']:.1f} MiB |")
        print(f"| agent RSS, {a.objects} objects after {a.trials} more commits | {results['rss_1000_after_commits_mib']:.1f} MiB |")
        print(f"| first sync of {a.objects} objects by the agent | {results['first_sync_s']:.2f} s |")
        print(f"| commit → applied, local repo (notify), median of {a.trials} | {results['local_latency_s']*1000:.0f} ms |")
        print(f"| commit → applied, polled file:// remote, interval 2s, median of {a.trials} | {results['poll_2s_latency_s']*1000:.0f} ms |")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try: p.wait(5)
                except Exception: p.kill()
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    main()
