#!/usr/bin/env python3
"""Agent measurements for docs/benchmarks.md: RSS of `kubesync run` idle and over many syncs of
1,000 managed objects, and commit-to-applied latency for a local repository (notify trigger) and
for a polled remote (a `git://` URL served by `git daemon` on 127.0.0.1: one ls-remote per
interval, fetch only when the ref moved). Everything runs on this machine: kubesim via
`kubesync cluster serve` on 127.0.0.1, git repositories in a temp dir. Stdlib only.

Usage: cargo build --release && python3 benches/agent.py [--bin target/release/kubesync]
       [--objects 1000] [--syncs 12] [--trials 10] [--interval 2]
Environment variables (MALLOC_ARENA_MAX, ...) pass through to the agent.
"""
import argparse, json, os, random, shutil, socket, statistics, subprocess, sys, tempfile, time, urllib.request

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

def get_json(url, timeout=2):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
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

def rss_mib(pid, field="VmRSS"):
    """Resident set now (VmRSS), or its peak so far (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
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
    cm = get_json(url + "/api/v1/namespaces/default/configmaps/probe")
    return cm and cm.get("data", {}).get("value")

def agent_idle(port, commit=None):
    """The agent finished its sync (of `commit`, if given): nothing in flight."""
    st = get_json(f"http://127.0.0.1:{port}/status")
    if not st or not st.get("sources"):
        return False
    s = st["sources"][0]
    return s.get("syncing") is None and s.get("commit") is not None and \
        (commit is None or s.get("commit") == commit)

def head(repo):
    return subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()

def commit_probe(repo, value):
    with open(os.path.join(repo, "m", "probe.yaml"), "w") as f:
        f.write(configmap("probe", value))
    git(repo, "commit", "-q", "-am", f"probe {value}")
    return head(repo)

def latency(url, repo, trials, tag, jitter=0.0):
    """Commit → the changed ConfigMap visible through the API, `trials` times. With `jitter`,
    wait a random 0..jitter s before each commit, so commits fall at random points of the
    agent's polling interval."""
    out = []
    for t in range(1, trials + 1):
        if jitter:
            time.sleep(random.uniform(0, jitter))  # random phase on purpose, not a wait for state
        value = f"{tag}-{t}"
        commit_probe(repo, value)
        start = time.monotonic()
        if not wait_for(lambda: probe_value(url) == value, 60):
            raise SystemExit(f"commit {value} not applied within 60s")
        out.append(time.monotonic() - start)
    return out

def p90(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]

def start_git_daemon(base, tmp):
    port = free_port()
    log = open(os.path.join(tmp, "git-daemon.log"), "w")
    d = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={base}",
                          "--listen=127.0.0.1", f"--port={port}", base], stdout=log, stderr=log)
    def up():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); return True
        except OSError:
            return False
    if not wait_for(up, 10):
        raise SystemExit("git daemon did not start")
    return d, port

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/kubesync")
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--syncs", type=int, default=12, help="commits synced while RSS is sampled")
    ap.add_argument("--trials", type=int, default=10, help="latency samples per trigger")
    ap.add_argument("--interval", type=int, default=2, help="polling interval, seconds")
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
        results = {"loadavg_start": os.getloadavg()}
        # Idle: one source with a single object.
        small = os.path.join(tmp, "small"); make_repo(small, 0, "small")
        p, port = run_agent(bin_, kc, small, tmp, "1m", "small"); procs.append(p)
        wait_for(lambda: probe_value(url) == "small" and agent_idle(port), 30)
        time.sleep(3)  # idle, on purpose: this is the measurement, not a wait for state
        results["rss_idle_mib"] = rss_mib(p.pid)
        p.terminate(); p.wait(10)

        # 1,000 managed objects, local repository (notify trigger): RSS after each sync.
        big = os.path.join(tmp, "big"); make_repo(big, a.objects, "big")
        p, port = run_agent(bin_, kc, big, tmp, "1m", "big"); procs.append(p)
        t0 = time.monotonic()
        if not wait_for(lambda: probe_value(url) == "big", 120):
            raise SystemExit("first sync of the big repo did not land")
        results["first_sync_applied_s"] = time.monotonic() - t0
        if not wait_for(lambda: agent_idle(port, head(big)), 120):
            raise SystemExit("first sync of the big repo did not finish")
        results["first_sync_done_s"] = time.monotonic() - t0
        series = [rss_mib(p.pid)]
        for s in range(1, a.syncs + 1):
            sha = commit_probe(big, f"rss-{s}")
            if not wait_for(lambda: agent_idle(port, sha), 120):
                raise SystemExit(f"sync {s} did not finish")
            series.append(rss_mib(p.pid))
        results["rss_1000_series_mib"] = [round(x, 1) for x in series]
        results["rss_1000_first_mib"] = series[0]
        results["rss_1000_max_mib"] = max(series)
        results["rss_1000_last_mib"] = series[-1]
        lat = latency(url, big, a.trials, "local")
        results["local_latency_s"] = lat
        results["rss_1000_peak_mib"] = rss_mib(p.pid, "VmHWM")
        p.terminate(); p.wait(10)

        # Polled remote: git:// served by git daemon on loopback, --interval N s.
        daemon, dport = start_git_daemon(tmp, tmp); procs.append(daemon)
        remote = f"git://127.0.0.1:{dport}/big"
        p, port = run_agent(bin_, kc, remote, tmp, f"{a.interval}s", "big"); procs.append(p)
        if not wait_for(lambda: agent_idle(port, head(big)), 120):
            raise SystemExit("the agent did not sync the git:// remote")
        lat = latency(url, big, a.trials, "poll", jitter=a.interval)
        results["poll_latency_s"] = lat
        results["rss_poll_mib"] = rss_mib(p.pid)
        p.terminate(); p.wait(10)

        results["loadavg_end"] = os.getloadavg()
        med = lambda xs: statistics.median(xs) * 1000
        print(json.dumps(results, indent=2))
        print("\n| measurement | value |\n|---|---:|")
        print(f"| agent RSS, idle (1 object) | {results['rss_idle_mib']:.1f} MiB |")
        print(f"| agent RSS, {a.objects} objects, after the first sync | {results['rss_1000_first_mib']:.1f} MiB |")
        print(f"| agent RSS, {a.objects} objects, max / last over {a.syncs} more syncs | "
              f"{results['rss_1000_max_mib']:.1f} / {results['rss_1000_last_mib']:.1f} MiB |")
        print(f"| agent RSS peak (VmHWM) over all of the above, {a.objects} objects | {results['rss_1000_peak_mib']:.1f} MiB |")
        print(f"| first sync of {a.objects} objects: applied / finished | "
              f"{results['first_sync_applied_s']:.2f} / {results['first_sync_done_s']:.2f} s |")
        l = results["local_latency_s"]
        print(f"| commit → applied, local repo (notify), median / p90 of {len(l)} | {med(l):.0f} / {p90(l)*1000:.0f} ms |")
        l = results["poll_latency_s"]
        print(f"| commit → applied, git:// remote polled every {a.interval} s, median / p90 of {len(l)} | "
              f"{med(l):.0f} / {p90(l)*1000:.0f} ms |")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                try: p.wait(5)
                except Exception: p.kill()
        shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    main()
