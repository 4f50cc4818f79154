#!/usr/bin/env python3
"""Junction vs nginx benchmark harness (issue 3).

One command:

    python3 bench/run.py [--quick] [--only SCENARIO,...] [--workers 1,2] [--runs 3]
                         [--duration 5] [--junction PATH] [--json OUT]

For every scenario it starts the backend(s), writes ONE nginx-syntax config file,
and runs nginx and Junction on that same file, alternately (nginx, junction, nginx,
junction, ...), each driven by the same `wrk` command.  It measures req/s, p50/p99
latency, proxy CPU seconds per 100k requests (utime+stime of every process of the
proxy, from /proc/PID/stat), peak RSS/PSS of the proxy's processes, and the same
wrk run straight at the backend as the ceiling.  See bench/README.md.

Python 3 standard library only.  Every process it starts runs in its own process
group and is killed on exit, including on Ctrl-C.
"""

import argparse
import ctypes
import datetime
import http.client
import json
import os
import platform
import re
import resource
import selectors
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
IS_ROOT = os.geteuid() == 0
CLK_TCK = os.sysconf("SC_CLK_TCK")
NOFILE_WANTED = 65536

WRK_THREADS = 2
WRK_CONNECTIONS = 64
ERROR_RATIO_LIMIT = 0.01  # a run with more than 1% failed requests is a failed run
READY_TIMEOUT = 15.0
HELLO = b"hello world\n"
BODY_100K = bytes((i * 7 + 13) % 251 for i in range(100 * 1024))
# 100 KB of text (compressible like HTML/CSS/JS), for the gzip scenarios.
TEXT_100K = b"".join(b"<p>line %d of a compressible text response</p>\n" % i
                     for i in range(3000))[:100 * 1024]
MEMCACHED_VALUE = bytes(0x61 + (i % 26) for i in range(1024))


class HarnessError(Exception):
    """The harness, a backend or nginx failed: the run is not trustworthy."""


class Unavailable(Exception):
    """Junction could not serve this scenario (not started, wrong answer, errors)."""


class ProcExited(RuntimeError):
    """A process we wait for has exited."""


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def tail(path, n=8):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(line.strip() for line in lines[-n:])
    except OSError:
        return ""


# --------------------------------------------------------------------------
# process bookkeeping


def _preexec():
    # Die with the harness even if it is SIGKILLed (best effort, direct child only).
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def read_stat(pid):
    """(ppid, own cpu ticks, reaped children's cpu ticks) or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    # rest[0] is field 3 (state); field n is rest[n-3]
    return int(rest[1]), int(rest[11]) + int(rest[12]), int(rest[13]) + int(rest[14])


def proc_children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = read_stat(int(d))
            if st:
                kids.setdefault(st[0], []).append(int(d))
    return kids


def process_tree(root):
    """root and all its descendants (via the ppid field of /proc/*/stat)."""
    if root is None or read_stat(root) is None:
        return []
    kids = proc_children_map()
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu_seconds(root):
    """CPU seconds of root + descendants (+ root's reaped children)."""
    total = 0
    for p in process_tree(root):
        st = read_stat(p)
        if st:
            total += st[1]
            if p == root:
                total += st[2]
    return total / CLK_TCK


def _status_kb(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_memory_kb(pids):
    return sum(_status_kb(p, "VmRSS:") for p in pids), sum(_pss_kb(p) for p in pids)


class MemorySampler(threading.Thread):
    """Samples the summed VmRSS / Pss of a process tree; keeps the peak."""

    def __init__(self, root, interval=0.1):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_rss = self.peak_pss = 0
        self._halt = threading.Event()

    def run(self):
        pids, refreshed, n = process_tree(self.root), time.monotonic(), 0
        while True:
            if time.monotonic() - refreshed > 1.0:
                pids, refreshed = process_tree(self.root), time.monotonic()
            rss = sum(_status_kb(p, "VmRSS:") for p in pids)
            self.peak_rss = max(self.peak_rss, rss)
            if n % 5 == 0:
                self.peak_pss = max(self.peak_pss, sum(_pss_kb(p) for p in pids))
            n += 1
            if self._halt.wait(self.interval):
                break
        rss, pss = tree_memory_kb(process_tree(self.root))
        self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)

    def stop(self):
        self._halt.set()
        self.join(5)


class Procs:
    """Every process the harness starts, each in its own session/process group."""

    def __init__(self):
        self.items = []  # (Popen, extra pids function)

    def spawn(self, cmd, log_path=None, **kw):
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        try:
            p = subprocess.Popen(cmd, stdin=kw.pop("stdin", subprocess.DEVNULL),
                                 stdout=kw.pop("stdout", out), stderr=kw.pop("stderr", out),
                                 start_new_session=True, preexec_fn=_preexec, **kw)
        finally:
            if log_path:
                out.close()
        p.extra_root = None  # e.g. the pid from a pid file, if the program daemonized
        self.items.append(p)
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=5.0):
        roots = [p.pid] + ([p.extra_root] if p.extra_root and p.extra_root != p.pid else [])
        tree = set()
        for r in roots:
            tree.update(process_tree(r))
        for r in roots:
            try:
                os.kill(r, sig)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p.poll()
            if p.returncode is not None and not any(read_stat(x) for x in tree if x != p.pid):
                break
            time.sleep(0.02)
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except OSError:
            pass
        for x in tree:
            if x != p.pid and read_stat(x) is not None:
                try:
                    os.kill(x, signal.SIGKILL)
                except OSError:
                    pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if p in self.items:
            self.items.remove(p)

    def stop_all(self):
        for p in list(reversed(self.items)):
            try:
                self.stop(p, timeout=2.0)
            except Exception:
                pass


PROCS = Procs()


# --------------------------------------------------------------------------
# small network helpers


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def can_connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def http_get(port, path, headers=None, timeout=3.0, tls=False):
    if tls:  # the bench's own self-signed certificate: not verified
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                        context=ssl._create_unverified_context())
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers=headers or {"Host": "bench"})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def wait_until(pred, timeout, proc=None, what="process"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ProcExited("%s exited with status %s" % (what, proc.returncode))
        try:
            if pred():
                return
        except (Unavailable, ProcExited):
            raise
        except Exception as e:  # keep polling
            last = e
        time.sleep(0.05)
    raise RuntimeError("%s not ready after %.0fs%s" % (what, timeout, (": %s" % last) if last else ""))


# --------------------------------------------------------------------------
# tools


def find_php_fpm():
    for name in ("php-fpm8.2", "php-fpm"):
        p = shutil.which(name) or (os.path.exists("/usr/sbin/" + name) and "/usr/sbin/" + name)
        if p:
            return p
    for d in ("/usr/sbin", "/usr/bin"):
        try:
            for f in sorted(os.listdir(d), reverse=True):
                if f.startswith("php-fpm"):
                    return os.path.join(d, f)
        except OSError:
            pass
    return None


def find_tool(name):
    return shutil.which(name) or next(
        (os.path.join(d, name) for d in ("/usr/sbin", "/sbin") if os.path.exists(os.path.join(d, name))), None)


def uwsgi_python_plugin():
    d = "/usr/lib/uwsgi/plugins"
    return os.path.exists(os.path.join(d, "python3_plugin.so")) or any(
        f.startswith("python3") for f in (os.listdir(d) if os.path.isdir(d) else []))


def ensure_tools(no_install):
    """apt-get install the Debian packages whose tools are missing (as root)."""
    missing = []
    if not find_tool("nginx"):
        missing.append("nginx")
    if not find_tool("wrk"):
        missing.append("wrk")
    if not find_php_fpm():
        missing.append("php-fpm")
    if not find_tool("uwsgi"):
        missing.append("uwsgi")
    if not uwsgi_python_plugin():
        missing.append("uwsgi-plugin-python3")
    if not find_tool("memcached"):
        missing.append("memcached")
    if not find_tool("h2load"):
        missing.append("nghttp2-client")
    if not missing:
        return
    if no_install or not IS_ROOT or not shutil.which("apt-get"):
        log("missing packages (not installing): %s" % " ".join(missing))
        return
    log("apt-get install %s" % " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Keep the packages' postinst scripts from starting system services.
    policy = "/usr/sbin/policy-rc.d"
    made_policy = False
    if not os.path.exists(policy):
        try:
            with open(policy, "w") as f:
                f.write("#!/bin/sh\nexit 101\n")
            os.chmod(policy, 0o755)
            made_policy = True
        except OSError:
            pass
    try:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=False,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends"] + missing,
                       env=env, check=False, stdout=subprocess.DEVNULL)
    finally:
        if made_policy:
            try:
                os.unlink(policy)
            except OSError:
                pass


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, NOFILE_WANTED) if IS_ROOT else hard
    if hard != resource.RLIM_INFINITY:
        for h in (want, hard):
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
                return h
            except (ValueError, OSError):
                continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def version_of(cmd):
    try:
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
        return r.stdout.decode("utf-8", "replace").strip().splitlines()[0]
    except Exception:
        return None


def build_junction():
    """cargo build --release at the repo root -> (path, None) or (None, reason)."""
    cargo = shutil.which("cargo")
    if not cargo:
        return None, "cargo not found"
    log("building junction: cargo build --release (in %s)" % REPO_ROOT)
    logf = os.path.join(tempfile.gettempdir(), "junction-bench-build.log")
    with open(logf, "wb") as out:
        r = subprocess.run([cargo, "build", "--release", "--bin", "junction"], cwd=REPO_ROOT,
                           stdout=out, stderr=subprocess.STDOUT)
    if r.returncode != 0:
        return None, "cargo build --release failed (%s): %s" % (logf, tail(logf, 3))
    path = os.path.join(REPO_ROOT, "target", "release", "junction")
    if not os.path.exists(path):
        return None, "no target/release/junction after build"
    return path, None


# --------------------------------------------------------------------------
# wrk

WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "\nBENCHJSON {\"requests\": %.0f, \"duration_us\": %.0f, \"bytes\": %.0f, " ..
    "\"connect\": %.0f, \"read\": %.0f, \"write\": %.0f, \"status\": %.0f, \"timeout\": %.0f, " ..
    "\"p50_us\": %.1f, \"p90_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f, \"mean_us\": %.1f}\n",
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""

_UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def _lat_us(text):
    m = re.match(r"([\d.]+)(us|ms|s|m|h)$", text)
    return float(m.group(1)) * _UNIT_US[m.group(2)] if m else None


def parse_wrk(out):
    m = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
    if m:
        d = json.loads(m.group(1))
    else:  # fall back on wrk's text (--latency distribution)
        d = {"requests": 0, "duration_us": 0, "bytes": 0, "connect": 0, "read": 0, "write": 0,
             "status": 0, "timeout": 0, "p50_us": None, "p90_us": None, "p99_us": None,
             "max_us": None, "mean_us": None}
        m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
        if m:
            d["requests"] = int(m.group(1))
            d["duration_us"] = float(m.group(2)) * _UNIT_US[m.group(3)]
        for pct in ("50", "90", "99"):
            m = re.search(r"^\s+%s%%\s+(\S+)" % pct, out, re.M)
            if m:
                d["p%s_us" % pct] = _lat_us(m.group(1))
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if m:
            d["connect"], d["read"], d["write"], d["timeout"] = map(int, m.groups())
        m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if m:
            d["status"] = int(m.group(1))
    secs = d["duration_us"] / 1e6 if d["duration_us"] else 0
    d["rps"] = d["requests"] / secs if secs else 0.0
    d["errors"] = int(d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"])
    return d


def run_wrk(ctx, port, path, duration, close=False, headers=(), tls=False):
    cmd = [ctx.wrk, "-t%d" % WRK_THREADS, "-c%d" % WRK_CONNECTIONS, "-d%ds" % duration,
           "--latency", "-s", ctx.wrk_lua]
    if close:
        cmd += ["-H", "Connection: close"]
    for h in headers:
        cmd += ["-H", h]
    cmd.append("%s://127.0.0.1:%d%s" % ("https" if tls else "http", port, path))
    d = parse_wrk(run_load("wrk", cmd, duration))
    d["cmd"] = " ".join(cmd)
    return d


def run_load(name, cmd, duration):
    """Runs a load generator to its end and returns what it printed (an error if it
    hangs or fails)."""
    p = PROCS.spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        PROCS.stop(p, sig=signal.SIGKILL)
        raise HarnessError("%s did not finish" % name)
    PROCS.items.remove(p)
    out = out.decode("utf-8", "replace")
    if p.returncode != 0:
        raise HarnessError("%s exited %s: %s" % (name, p.returncode, out.strip()[-300:]))
    return out


H2_STREAMS = 10  # h2load -m: concurrent streams per connection


def parse_h2load(out):
    """h2load's summary as parse_wrk's keys (no percentiles: h2load gives mean/sd only)."""
    d = {"requests": 0, "duration_us": 0, "bytes": 0, "connect": 0, "read": 0, "write": 0,
         "status": 0, "timeout": 0, "p50_us": None, "p90_us": None, "p99_us": None,
         "max_us": None, "mean_us": None}
    m = re.search(r"finished in ([\d.]+)(us|ms|s|m),", out)
    if m:
        d["duration_us"] = float(m.group(1)) * _UNIT_US[m.group(2)]
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    if m:
        total, started, done, ok, failed, errored, timeout = map(int, m.groups())
        d["requests"] = ok
        d["read"] = errored
        d["timeout"] = timeout
    m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if m:
        d["status"] = int(m.group(3)) + int(m.group(4))
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if m:
        d["max_us"], d["mean_us"] = _lat_us(m.group(2)), _lat_us(m.group(3))
    secs = d["duration_us"] / 1e6 if d["duration_us"] else 0
    d["rps"] = d["requests"] / secs if secs else 0.0
    d["errors"] = int(d["connect"] + d["read"] + d["write"] + d["status"] + d["timeout"])
    return d


def run_h2load(ctx, port, path, duration):
    """HTTP/2 over TLS (ALPN h2): h2load from Debian's nghttp2-client."""
    h2load = find_tool("h2load")
    if not h2load:
        raise HarnessError("h2load is missing: apt-get install -y nghttp2-client")
    cmd = [h2load, "-t%d" % WRK_THREADS, "-c%d" % WRK_CONNECTIONS, "-m%d" % H2_STREAMS,
           "-D%d" % duration, "https://127.0.0.1:%d%s" % (port, path)]
    out = run_load("h2load", cmd, duration)
    if "h2" not in (re.search(r"Application protocol: (\S+)", out) or [None, ""])[1]:
        raise HarnessError("h2load did not negotiate h2: %s" % out.strip()[-300:])
    d = parse_h2load(out)
    d["cmd"] = " ".join(cmd)
    return d


def tls_files(tmp):
    """A self-signed certificate for the TLS scenarios (the same files for both proxies)."""
    d = os.path.join(tmp, "tls")
    cert, key = os.path.join(d, "bench.pem"), os.path.join(d, "bench.key")
    if not os.path.exists(cert):
        os.makedirs(d, exist_ok=True)
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert,
                            "-days", "30", "-subj", "/CN=bench"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if r.returncode != 0:
            raise HarnessError("openssl req failed: %s" % r.stderr.decode()[-300:])
    return cert, key


def error_summary(d):
    parts = ["%s %d" % (k, d[k]) for k in ("connect", "read", "write", "status", "timeout") if d.get(k)]
    return "%d of %d requests failed (%s)" % (d["errors"], d["requests"] + d["errors"] - d["status"],
                                              ", ".join(parts) or "none")


def run_failed(d):
    return d["requests"] == 0 or d["errors"] > ERROR_RATIO_LIMIT * max(d["requests"], 1)


# --------------------------------------------------------------------------
# backends


def temp_path_directives(d, indent="    "):
    names = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    return "".join("%s%s_temp_path %s/%s_temp;\n" % (indent, n, d, n) for n in names)


class Backend:
    kind = "?"
    direct_path = None  # path for wrk straight at the backend (HTTP), or None
    direct_close = False  # drive the direct run with Connection: close

    def __init__(self, ctx, workdir):
        self.ctx, self.dir = ctx, workdir
        os.makedirs(workdir, exist_ok=True)
        self.procs = []
        self.port = None
        self.direct_port = None

    def stop(self):
        for p in self.procs:
            PROCS.stop(p)
        self.procs = []

    def cpu_seconds(self):
        return sum(tree_cpu_seconds(p.pid) for p in self.procs)

    def start(self):
        last = None
        for _ in range(3):  # a probed port may be taken in between; retry on a new one
            try:
                self._start()
                return
            except RuntimeError as e:
                last = e
                self.stop()
        raise HarnessError("%s backend failed to start: %s" % (self.kind, last))


class StaticNginxBackend(Backend):
    """nginx serving static files: a backend far faster than any proxy in front of it."""

    kind = "nginx-static"

    def _start(self):
        www = os.path.join(self.dir, "www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "hello.txt"), "wb") as f:
            f.write(HELLO)
        with open(os.path.join(www, "100k.bin"), "wb") as f:
            f.write(BODY_100K)
        with open(os.path.join(www, "100k.txt"), "wb") as f:
            f.write(TEXT_100K)
        self.port = self.direct_port = free_port()
        conf = os.path.join(self.dir, "backend.conf")
        with open(conf, "w") as f:
            f.write(("user root;\n" if IS_ROOT else "") +
                    "worker_processes 1;\n"
                    "events { worker_connections 16384; }\n"
                    "http {\n"
                    "    access_log off;\n" + temp_path_directives(self.dir) +
                    "    default_type application/octet-stream;\n"
                    "    sendfile on;\n"
                    "    tcp_nopush on;\n"
                    "    keepalive_requests 1000000;\n"
                    "    keepalive_timeout 300s;\n"
                    "    open_file_cache max=64;\n"
                    "    server {\n"
                    "        listen 127.0.0.1:%d backlog=4096;\n"
                    "        root %s;\n"
                    "    }\n"
                    "}\n" % (self.port, www))
        g = "daemon off; pid %s/backend.pid; error_log %s/backend-error.log;" % (self.dir, self.dir)
        p = PROCS.spawn([self.ctx.nginx, "-p", self.dir, "-c", conf, "-g", g],
                        log_path=os.path.join(self.dir, "backend.out"))
        self.procs.append(p)
        wait_until(lambda: http_get(self.port, "/hello.txt") == (200, HELLO), 10, p,
                   "backend nginx (%s)" % tail(os.path.join(self.dir, "backend-error.log"), 2))


class PhpFpmBackend(Backend):
    kind = "php-fpm"

    def _start(self):
        self.port = free_port()
        self.script = os.path.join(self.dir, "index.php")
        with open(self.script, "w") as f:
            f.write('<?php\necho "hello world\\n";\n')
        conf = os.path.join(self.dir, "php-fpm.conf")
        with open(conf, "w") as f:
            f.write("[global]\n"
                    "pid = %(d)s/php-fpm.pid\n"
                    "error_log = %(d)s/php-fpm.log\n"
                    "daemonize = no\n"
                    "[bench]\n" % {"d": self.dir} +
                    ("user = root\ngroup = root\n" if IS_ROOT else "") +
                    "listen = 127.0.0.1:%d\n"
                    "listen.backlog = 4096\n"
                    "pm = static\n"
                    "pm.max_children = 2\n"
                    "pm.max_requests = 0\n"
                    "catch_workers_output = no\n" % self.port)
        cmd = [self.ctx.php_fpm] + (["-R"] if IS_ROOT else []) + ["-F", "-y", conf]
        p = PROCS.spawn(cmd, log_path=os.path.join(self.dir, "php-fpm.out"))
        self.procs.append(p)
        wait_until(lambda: can_connect(self.port), 10, p,
                   "php-fpm (%s)" % tail(os.path.join(self.dir, "php-fpm.log"), 2))


class UwsgiBackend(Backend):
    """uwsgi + python3 plugin, hello-world WSGI app; protocol 'uwsgi' or 'scgi'.
    The same instance also listens with --http11-socket: the direct (ceiling) figure, driven
    with Connection: close (a sync worker would otherwise hold one keepalive client
    connection each, and the proxies also open one backend connection per request)."""

    direct_close = True

    def __init__(self, ctx, workdir, protocol):
        super().__init__(ctx, workdir)
        self.protocol = protocol
        self.kind = "uwsgi" if protocol == "uwsgi" else "uwsgi-scgi"
        self.direct_path = "/"

    def _start(self):
        app = os.path.join(self.dir, "app.py")
        with open(app, "w") as f:
            f.write("def application(environ, start_response):\n"
                    "    start_response('200 OK', [('Content-Type', 'text/plain'),"
                    " ('Content-Length', '12')])\n"
                    "    return [b'hello world\\n']\n")
        self.port, self.direct_port = free_port(), free_port()
        sock_opt = "--socket" if self.protocol == "uwsgi" else "--scgi-socket"
        cmd = [self.ctx.uwsgi, "--plugin", "python3", sock_opt, "127.0.0.1:%d" % self.port,
               "--http11-socket", "127.0.0.1:%d" % self.direct_port, "--wsgi-file", app,
               "--processes", "2", "--master", "--die-on-term", "--disable-logging",
               "--listen", "1024", "--max-fd", "16384"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        p = PROCS.spawn(cmd, log_path=os.path.join(self.dir, "uwsgi.log"), env=env)
        self.procs.append(p)
        wait_until(lambda: can_connect(self.port) and http_get(self.direct_port, "/") == (200, HELLO),
                   15, p, "uwsgi (%s)" % tail(os.path.join(self.dir, "uwsgi.log"), 2))


class MemcachedBackend(Backend):
    kind = "memcached"
    key = "/mc"

    def _start(self):
        self.port = free_port()
        cmd = [self.ctx.memcached, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0",
               "-t", "2", "-c", "16384"] + (["-u", "root"] if IS_ROOT else [])
        p = PROCS.spawn(cmd, log_path=os.path.join(self.dir, "memcached.log"))
        self.procs.append(p)
        wait_until(lambda: can_connect(self.port), 10, p, "memcached")
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(b"set %s 0 0 %d\r\n%s\r\n" % (self.key.encode(), len(MEMCACHED_VALUE),
                                                     MEMCACHED_VALUE))
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = s.recv(100)
                if not chunk:
                    break
                reply += chunk
        if reply.strip() != b"STORED":
            raise RuntimeError("memcached set failed: %r" % reply)


# --------------------------------------------------------------------------
# scenarios and the shared config

FASTCGI_PARAMS = [
    ("QUERY_STRING", "$query_string"), ("REQUEST_METHOD", "$request_method"),
    ("CONTENT_TYPE", "$content_type"), ("CONTENT_LENGTH", "$content_length"),
    ("SCRIPT_NAME", "$fastcgi_script_name"), ("REQUEST_URI", "$request_uri"),
    ("DOCUMENT_URI", "$document_uri"), ("DOCUMENT_ROOT", "$document_root"),
    ("SERVER_PROTOCOL", "$server_protocol"), ("REQUEST_SCHEME", "$scheme"),
    ("GATEWAY_INTERFACE", "CGI/1.1"), ("SERVER_SOFTWARE", "nginx"),
    ("REMOTE_ADDR", "$remote_addr"), ("REMOTE_PORT", "$remote_port"),
    ("SERVER_ADDR", "$server_addr"), ("SERVER_PORT", "$server_port"),
    ("SERVER_NAME", "$server_name"),
]
CGI_PARAMS = [  # uwsgi_params / scgi_params (Debian's files, inlined)
    ("QUERY_STRING", "$query_string"), ("REQUEST_METHOD", "$request_method"),
    ("CONTENT_TYPE", "$content_type"), ("CONTENT_LENGTH", "$content_length"),
    ("REQUEST_URI", "$request_uri"), ("PATH_INFO", "$document_uri"),
    ("DOCUMENT_ROOT", "$document_root"), ("SERVER_PROTOCOL", "$server_protocol"),
    ("REQUEST_SCHEME", "$scheme"), ("REMOTE_ADDR", "$remote_addr"),
    ("REMOTE_PORT", "$remote_port"), ("SERVER_PORT", "$server_port"),
    ("SERVER_NAME", "$server_name"),
]


def _params(directive, params, indent):
    return "".join("%s%s %s %s;\n" % (indent, directive, k, v) for k, v in params)


class Scenario:
    def __init__(self, name, backend, path, expect, desc, close=False, buffering=True,
                 idle=False, gzip=None, tls=False, h2=False):
        self.name, self.backend, self.path, self.expect, self.desc = name, backend, path, expect, desc
        self.close, self.buffering, self.idle = close, buffering, idle
        # tls: the proxy listens with `ssl` (the bench's certificate); h2: and `http2`, driven
        # by h2load instead of wrk.
        self.tls, self.h2 = tls or h2, h2
        # gzip: the gzip_comp_level to compress with (wrk then sends Accept-Encoding: gzip).
        self.gzip = gzip
        self.headers = ("Accept-Encoding: gzip",) if gzip else ()

    def make_backend(self, ctx, workdir):
        if self.backend == "static":
            b = StaticNginxBackend(ctx, workdir)
            b.direct_path = self.path
        elif self.backend == "php":
            b = PhpFpmBackend(ctx, workdir)
        elif self.backend in ("uwsgi", "scgi"):
            b = UwsgiBackend(ctx, workdir, self.backend)
        elif self.backend == "memcached":
            b = MemcachedBackend(ctx, workdir)
        else:
            raise ValueError(self.backend)
        return b

    def http_block(self, b, I="    "):
        """upstream blocks + the location, for the one shared config file."""
        ups, loc = "", ""
        if self.backend == "static":
            ups = ("%supstream backend {\n%s    server 127.0.0.1:%d;\n%s    keepalive 32;\n%s}\n"
                   % (I, I, b.port, I, I))
            loc = ("proxy_pass http://backend;\n"
                   "proxy_http_version 1.1;\n"
                   "proxy_set_header Connection \"\";\n")
            if not self.buffering:
                loc += "proxy_buffering off;\n"
            if self.gzip:
                loc += "gzip on;\ngzip_comp_level %d;\ngzip_types *;\n" % self.gzip
        elif self.backend == "php":
            loc = ("fastcgi_pass 127.0.0.1:%d;\nfastcgi_param SCRIPT_FILENAME %s;\n" % (b.port, b.script)
                   + _params("fastcgi_param", FASTCGI_PARAMS, ""))
        elif self.backend == "uwsgi":
            loc = "uwsgi_pass 127.0.0.1:%d;\n" % b.port + _params("uwsgi_param", CGI_PARAMS, "")
        elif self.backend == "scgi":
            loc = "scgi_pass 127.0.0.1:%d;\n" % b.port + _params("scgi_param", CGI_PARAMS, "")
        elif self.backend == "memcached":
            ups = ("%supstream memcached {\n%s    server 127.0.0.1:%d;\n%s    keepalive 32;\n%s}\n"
                   % (I, I, b.port, I, I))
            loc = "set $memcached_key $uri;\nmemcached_pass memcached;\n"
        loc = "".join(I * 3 + line + "\n" for line in loc.splitlines())
        return ups, loc


SCENARIOS = [
    Scenario("http-small", "static", "/hello.txt", HELLO,
             "12-byte file from an nginx static backend, upstream keepalive"),
    Scenario("http-100k", "static", "/100k.bin", BODY_100K,
             "100 KB response, upstream keepalive"),
    Scenario("http-close", "static", "/hello.txt", HELLO,
             "12-byte file, wrk -H 'Connection: close' (no client keepalive)", close=True),
    Scenario("http-unbuffered", "static", "/100k.bin", BODY_100K,
             "100 KB response with proxy_buffering off", buffering=False),
    Scenario("gzip-1", "static", "/100k.txt", TEXT_100K,
             "100 KB text response compressed with gzip_comp_level 1", gzip=1),
    Scenario("gzip-6", "static", "/100k.txt", TEXT_100K,
             "100 KB text response compressed with gzip_comp_level 6", gzip=6),
    Scenario("php-fpm", "php", "/index.php", HELLO,
             "PHP hello world, php-fpm pm=static (2 children), same pool for both"),
    Scenario("uwsgi", "uwsgi", "/", HELLO, "uwsgi python3 hello world, --processes 2"),
    Scenario("scgi", "scgi", "/", HELLO, "uwsgi --scgi-socket, same hello world app"),
    Scenario("memcached-hit", "memcached", MemcachedBackend.key, MEMCACHED_VALUE,
             "1 KB value, $memcached_key $uri, upstream keepalive"),
    Scenario("idle-10k", "static", "/hello.txt", HELLO,
             "N idle keepalive client connections (one request each), RSS per connection",
             idle=True),
    Scenario("https-small", "static", "/hello.txt", HELLO,
             "http-small over TLS (ECDSA P-256, TLS 1.3), client keepalive", tls=True),
    Scenario("tls-handshakes", "static", "/hello.txt", HELLO,
             "12-byte file over TLS, wrk -H 'Connection: close': a full handshake per request",
             close=True, tls=True),
    Scenario("h2-small", "static", "/hello.txt", HELLO,
             "12-byte file over HTTP/2 + TLS, h2load -m %d streams per connection" % H2_STREAMS,
             h2=True),
    Scenario("idle-tls", "static", "/hello.txt", HELLO,
             "N idle keepalive TLS connections (one request each), RSS per connection",
             idle=True, tls=True),
]
SCENARIO_NAMES = [s.name for s in SCENARIOS]


def tls_listen(scn, tmp):
    """The `listen` flags and `ssl_*` lines of a TLS scenario (nginx 1.22 needs TLSv1.3 named
    and knows only `listen … http2`)."""
    if not scn.tls:
        return ""
    cert, key = tls_files(tmp)
    return (" ssl%s;\n"
            "        ssl_certificate %s;\n"
            "        ssl_certificate_key %s;\n"
            "        ssl_protocols TLSv1.2 TLSv1.3" % (" http2" if scn.h2 else "", cert, key))


def proxy_config(scn, workers, port, backend, tmp):
    ups, loc = scn.http_block(backend)
    return ("# junction bench: scenario %s (%s)\n"
            "# the same file is run by nginx and by junction\n"
            "worker_processes %d;\n"
            "events { worker_connections 16384; }\n"
            "http {\n"
            "    access_log off;\n" % (scn.name, scn.desc, workers) +
            ("" if IS_ROOT else temp_path_directives(os.path.join(tmp, "proxy-temp"))) +
            ups +
            "    server {\n"
            "        listen 127.0.0.1:%d%s;\n" % (port, tls_listen(scn, tmp)) +
            "        location / {\n" + loc +
            "        }\n"
            "    }\n"
            "}\n")


# --------------------------------------------------------------------------
# proxies


class Proxy:
    def __init__(self, label, binary, is_nginx):
        self.label, self.binary, self.is_nginx = label, binary, is_nginx
        self.proc = None
        self.root = None
        self.prefix = None

    def start(self, conf, prefix, scn, port):
        """Start, then wait for the pid file and a correct answer to a GET."""
        os.makedirs(prefix, exist_ok=True)
        self.prefix = prefix
        pidfile = os.path.join(prefix, "%s.pid" % self.label)
        errlog = os.path.join(prefix, "error.log")
        for f in (pidfile,):
            if os.path.exists(f):
                os.unlink(f)
        g = "daemon off; pid %s; error_log %s;" % (pidfile, errlog)
        out = os.path.join(prefix, "stdout.log")
        self.proc = PROCS.spawn([self.binary, "-p", prefix + "/", "-c", conf, "-g", g], log_path=out)

        def ready():
            if self.root is None:
                exited = self.proc.poll()
                try:
                    with open(pidfile) as f:
                        pid = int(f.read().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if not pid or read_stat(pid) is None:
                    if exited is not None:  # (a live pid in the pid file: it daemonized)
                        raise ProcExited("%s exited with status %s" % (self.label, exited))
                    return False
                self.root = pid
                if pid != self.proc.pid:
                    self.proc.extra_root = pid
            status, body = http_get(port, scn.path, tls=scn.tls)
            if status != 200 or body != scn.expect:
                raise Unavailable("GET %s: status %d, %d-byte body%s" % (
                    scn.path, status, len(body), "" if body == scn.expect else " (wrong content)"))
            return True

        self.root = None
        started = False
        try:
            wait_until(ready, READY_TIMEOUT, None, self.label)
        except Unavailable as e:
            why = str(e)
            self.stop()
            raise Unavailable("%s; error.log: %s" % (why, tail(errlog, 2)))
        except RuntimeError as e:
            why = str(e)
            started = self.root is not None
            self.stop()
            details = tail(errlog, 3) or tail(out, 3)
            if started:  # pid file was there: it started but never answered right
                raise Unavailable("started (pid file) but GET %s never succeeded: %s%s" % (
                    scn.path, why.split(": ", 1)[-1], ("; " + details) if details else ""))
            raise Unavailable("did not start: %s%s" % (why, ("; " + details) if details else ""))

    def cpu(self):
        return tree_cpu_seconds(self.root)

    def stop(self):
        if self.proc is not None:
            PROCS.stop(self.proc)
        self.proc, self.root = None, None

    def log_problems(self):
        path = os.path.join(self.prefix or "", "error.log")
        try:
            with open(path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        return [l for l in lines if re.search(r"\[(emerg|alert|crit)\]", l)][:3]


# --------------------------------------------------------------------------
# idle connections client (runs as a child: python3 run.py --_idle-client PORT N PATH)


def idle_client(port, n, path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    req = ("GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % path).encode()
    conns, failed = [], 0
    sel = selectors.DefaultSelector()
    batch = 200
    t0 = time.monotonic()
    for start in range(0, n, batch):
        if start and not conns:  # the first batch got nothing: no point going on
            failed += n - start
            break
        pending = {}
        for _ in range(min(batch, n - start)):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            pending[s] = b""
            sel.register(s, selectors.EVENT_WRITE)
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            for key, ev in sel.select(timeout=1):
                s = key.fileobj
                if ev & selectors.EVENT_WRITE:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        sel.unregister(s)
                        del pending[s]
                        s.close()
                        failed += 1
                        continue
                    try:
                        s.send(req)
                    except OSError:
                        sel.unregister(s)
                        del pending[s]
                        s.close()
                        failed += 1
                        continue
                    sel.modify(s, selectors.EVENT_READ)
                else:
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        sel.unregister(s)
                        del pending[s]
                        s.close()
                        failed += 1
                        continue
                    buf = pending[s] + data
                    pending[s] = buf
                    head, sep, body = buf.partition(b"\r\n\r\n")
                    if sep:
                        m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                        if m:
                            complete = len(body) >= int(m.group(1))
                        elif re.search(rb"(?i)\r\ntransfer-encoding:\s*chunked", head):
                            complete = body.endswith(b"0\r\n\r\n")
                        else:
                            complete = True
                        if complete:
                            sel.unregister(s)
                            del pending[s]
                            conns.append(s)
        for s in pending:
            sel.unregister(s)
            s.close()
            failed += 1
    print("READY %d %d %.2f" % (len(conns), failed, time.monotonic() - t0), flush=True)
    sys.stdin.readline()
    for s in conns:
        s.close()  # SO_LINGER 0: RST, no TIME_WAIT piling up across runs


def idle_tls_client(port, n, path):
    """idle_client over TLS: connections opened one after another (a blocking handshake and
    one request each), then held."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass
    req = ("GET %s HTTP/1.1\r\nHost: bench\r\n\r\n" % path).encode()
    ctx = ssl._create_unverified_context()
    conns, failed = [], 0
    t0 = time.monotonic()
    for i in range(n):
        if i >= 200 and not conns:  # nothing works: no point going on
            failed += n - i
            break
        try:
            raw = socket.create_connection(("127.0.0.1", port), timeout=10)
            raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s = ctx.wrap_socket(raw, server_hostname="bench")
            s.sendall(req)
            buf = b""
            while True:
                data = s.recv(65536)
                if not data:
                    raise OSError("closed")
                buf += data
                head, sep, body = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head) if sep else None
                if sep and (not m or len(body) >= int(m.group(1))):
                    break
            conns.append(s)
        except OSError:
            failed += 1
    print("READY %d %d %.2f" % (len(conns), failed, time.monotonic() - t0), flush=True)
    sys.stdin.readline()
    for s in conns:
        s.close()


def measure_idle(ctx, proxy, port, n, path, tls=False):
    """RSS/PSS of the proxy before and while holding n idle keepalive connections."""
    time.sleep(0.2)
    base = []
    for _ in range(3):
        base.append(tree_memory_kb(process_tree(proxy.root)))
        time.sleep(0.05)
    rss0, pss0 = min(b[0] for b in base), min(b[1] for b in base)
    cpu0 = proxy.cpu()
    p = PROCS.spawn([sys.executable, os.path.abspath(__file__), "--_idle-client", str(port),
                     str(n), path] + (["tls"] if tls else []), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE)
    try:
        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        line = b""
        if sel.select(timeout=120):
            line = p.stdout.readline()
        m = re.match(rb"READY (\d+) (\d+) ([\d.]+)", line)
        if not m:
            err = p.stderr.read1(2000) if p.poll() is not None else b""
            raise HarnessError("idle client failed: %r %r" % (line, err))
        ok, failed, secs = int(m.group(1)), int(m.group(2)), float(m.group(3))
        time.sleep(0.5)
        peak_rss = peak_pss = 0
        for _ in range(5):
            rss, pss = tree_memory_kb(process_tree(proxy.root))
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.1)
        cpu1 = proxy.cpu()
        try:
            p.stdin.write(b"done\n")
            p.stdin.flush()
        except OSError:
            pass
        p.wait(30)
    finally:
        PROCS.stop(p)
    res = {"connections": ok, "failed": failed, "open_seconds": secs,
           "rss_base_mb": rss0 / 1024, "pss_base_mb": pss0 / 1024,
           "rss_mb": peak_rss / 1024, "pss_mb": peak_pss / 1024,
           "kb_per_conn": (peak_rss - rss0) / ok if ok else None,
           "pss_kb_per_conn": (peak_pss - pss0) / ok if ok else None,
           "cpu_s": cpu1 - cpu0}
    return res


# --------------------------------------------------------------------------
# the run


class Ctx:
    pass


def measure_wrk_run(ctx, proxy, scn, port):
    def load(duration):
        if scn.h2:
            return run_h2load(ctx, port, scn.path, duration)
        return run_wrk(ctx, port, scn.path, duration, scn.close, scn.headers, scn.tls)

    if ctx.warmup:
        load(ctx.warmup)
    sampler = MemorySampler(proxy.root)
    b_cpu0 = ctx.backend.cpu_seconds()
    cpu0 = proxy.cpu()
    sampler.start()
    try:
        d = load(ctx.duration)
    finally:
        sampler.stop()
    cpu1 = proxy.cpu()
    b_cpu1 = ctx.backend.cpu_seconds()
    d["cpu_s"] = cpu1 - cpu0
    d["cpu_per_100k"] = (cpu1 - cpu0) / d["requests"] * 1e5 if d["requests"] else None
    d["backend_cpu_per_100k"] = (b_cpu1 - b_cpu0) / d["requests"] * 1e5 if d["requests"] else None
    d["rss_mb"] = sampler.peak_rss / 1024
    d["pss_mb"] = sampler.peak_pss / 1024
    return d


def one_run(ctx, proxy, scn, workers, conf, port, run_no):
    prefix = os.path.join(ctx.tmp, scn.name, "w%d-%s-%d" % (workers, proxy.label, run_no))
    proxy.start(conf, prefix, scn, port)
    try:
        if scn.idle:
            try:
                d = measure_idle(ctx, proxy, port, ctx.idle_conns, scn.path, scn.tls)
            except HarnessError as e:
                raise Unavailable(str(e))
            if read_stat(proxy.root) is None:
                raise Unavailable("exited during the run (status %s)" % proxy.proc.poll())
            if d["connections"] < ctx.idle_conns * (1 - ERROR_RATIO_LIMIT):
                raise Unavailable("only %d of %d idle connections were served" % (
                    d["connections"], ctx.idle_conns))
        else:
            try:
                d = measure_wrk_run(ctx, proxy, scn, port)
            except HarnessError as e:  # wrk gave up on this proxy (refused, reset, ...)
                raise Unavailable("wrk: %s" % e)
            if read_stat(proxy.root) is None:
                raise Unavailable("exited during the run (status %s)" % proxy.proc.poll())
            if run_failed(d):
                raise Unavailable(error_summary(d))
            # still the right answer after load?
            try:
                status, body = http_get(port, scn.path, tls=scn.tls)
            except (OSError, http.client.HTTPException) as e:
                raise Unavailable("after load: GET %s: %s" % (scn.path, e))
            if status != 200 or body != scn.expect:
                raise Unavailable("after load: GET %s: status %d, %s body" % (
                    scn.path, status, "right" if body == scn.expect else "wrong"))
        problems = proxy.log_problems()
        if problems:
            d["log_problems"] = problems
        return d
    finally:
        proxy.stop()


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


SUMMARY_KEYS = ("rps", "p50_us", "p99_us", "cpu_per_100k", "rss_mb", "pss_mb", "kb_per_conn",
                "pss_kb_per_conn", "backend_cpu_per_100k", "errors")


def summarize(runs):
    return {k: median([r.get(k) for r in runs]) for k in SUMMARY_KEYS}


def run_scenario(ctx, scn):
    res = {"description": scn.desc, "direct": None, "workers": {}}
    bdir = os.path.join(ctx.tmp, scn.name, "backend")
    backend = scn.make_backend(ctx, bdir)
    ctx.backend = backend
    try:
        backend.start()
        res["backend"] = backend.kind
        if not scn.idle:
            if backend.direct_path is not None:
                log("%s: direct to backend (%s)" % (scn.name, backend.kind))
                d = run_wrk(ctx, backend.direct_port, backend.direct_path, ctx.duration,
                            scn.close or backend.direct_close)
                d["connection_close"] = scn.close or backend.direct_close
                res["direct"] = d
                if run_failed(d):
                    raise HarnessError("backend itself fails: " + error_summary(d))
            else:
                res["direct"] = {"note": "backend does not speak HTTP"}
        for w in ctx.workers:
            port = free_port()
            conf = os.path.join(ctx.tmp, scn.name, "w%d.conf" % w)
            with open(conf, "w") as f:
                f.write(proxy_config(scn, w, port, backend, ctx.tmp))
            wres = {"config": open(conf).read()}
            res["workers"][str(w)] = wres
            for p in ctx.proxies:
                wres[p.label] = {"runs": [], "available": True, "reason": None}
            if ctx.junction_reason:
                wres["junction"].update(available=False, reason=ctx.junction_reason)
            for i in range(ctx.runs):
                for p in ctx.proxies:
                    entry = wres[p.label]
                    if not entry["available"]:
                        continue
                    log("%s w%d run %d/%d: %s" % (scn.name, w, i + 1, ctx.runs, p.label))
                    try:
                        entry["runs"].append(one_run(ctx, p, scn, w, conf, port, i + 1))
                    except Unavailable as e:
                        if p.label == "nginx":
                            raise HarnessError("nginx failed on %s: %s" % (scn.name, e))
                        entry.update(available=False, reason=str(e))
                        log("%s w%d: %s not available: %s" % (scn.name, w, p.label, e))
            for p in ctx.proxies:
                entry = wres[p.label]
                if entry["runs"]:
                    entry["median"] = summarize(entry["runs"])
                    if not entry["available"]:
                        entry["median"] = None
    finally:
        backend.stop()
        ctx.backend = None
    return res


# --------------------------------------------------------------------------
# output


def fmt(v, kind):
    if v is None:
        return "-"
    if kind == "rps":
        return "%.0f" % v
    if kind == "ms":
        return "%.2f" % (v / 1000.0)
    if kind == "cpu":
        return "%.2f" % v
    if kind == "mb":
        return "%.1f" % v
    if kind == "kb":
        return "%.2f" % v
    if kind == "x":
        return "%.2fx" % v
    return str(v)


COLUMNS = [("req/s", "rps", "rps"), ("p50 ms", "p50_us", "ms"), ("p99 ms", "p99_us", "ms"),
           ("CPU s/100k", "cpu_per_100k", "cpu"), ("RSS MB", "rss_mb", "mb"),
           ("PSS MB", "pss_mb", "mb"), ("KB/conn", "kb_per_conn", "kb")]
# target per column: junction/nginx must be >= (rps) or <= (the others) 1.0
TARGETS = {"rps": ">=", "cpu_per_100k": "<=", "p99_us": "<=", "kb_per_conn": "<="}


def ratio(j, n):
    if j is None or n is None or n == 0:
        return None
    return j / n


def table(results, self_test):
    head = ["scenario", "w", "proxy"] + [c[0] for c in COLUMNS] + ["targets"]
    rows = []
    for name, res in results.items():
        if "error" in res:
            rows.append([name, "-", "HARNESS ERROR: %s" % res["error"]])
            continue
        d = res.get("direct")
        if d and "rps" in d:
            rows.append([name, "-", "direct"] + [fmt(d.get(k), f) if k in d else "-"
                                                 for _, k, f in COLUMNS] + ["(ceiling)"])
        elif d:
            rows.append([name, "-", "direct: n/a (%s)" % d.get("note")])
        for w, wres in res["workers"].items():
            n = wres.get("nginx", {}).get("median")
            for label in ("nginx", "junction"):
                e = wres.get(label)
                if e is None:
                    continue
                if not e["available"]:
                    rows.append([name, w, "%s: not available (%s)" % (label, e["reason"])])
                    continue
                m = e.get("median") or {}
                rows.append([name, w, label + (" (=nginx)" if label == "junction" and self_test else "")]
                            + [fmt(m.get(k), f) for _, k, f in COLUMNS] + [""])
            j = wres.get("junction", {})
            if n and j.get("available") and j.get("median"):
                jm = j["median"]
                rat = {k: ratio(jm.get(k), n.get(k)) for _, k, _ in COLUMNS}
                verdict = []
                for k, op in TARGETS.items():
                    r = rat.get(k)
                    if r is None:
                        continue
                    ok = r >= 1.0 if op == ">=" else r <= 1.0
                    verdict.append("%s %s" % ({"rps": "rps", "cpu_per_100k": "cpu", "p99_us": "p99",
                                               "kb_per_conn": "idle-mem"}[k], "ok" if ok else "MISS"))
                rows.append([name, w, "junction/nginx"] + [fmt(rat[k], "x") for _, k, _ in COLUMNS]
                            + [", ".join(verdict)])
    widths = [len(h) for h in head]
    for r in rows:
        if len(r) == len(head):
            widths = [max(a, len(b)) for a, b in zip(widths, r)]
    lines = ["  ".join(h.ljust(wd) for h, wd in zip(head, widths)).rstrip(),
             "  ".join("-" * wd for wd in widths)]
    for r in rows:
        if len(r) == len(head):
            lines.append("  ".join(c.ljust(wd) if i < 3 else c.rjust(wd) if i < len(head) - 1 else c
                                   for i, (c, wd) in enumerate(zip(r, widths))).rstrip())
        else:  # a message row
            lines.append("  ".join(c.ljust(wd) for c, wd in zip(r[:2], widths[:2])) + "  " + r[2])
    return "\n".join(lines)


def machine_info():
    info = {"kernel": platform.release(), "cpus": os.cpu_count(), "hostname": platform.node()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            info["mem_gb"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
        info["loadavg_at_start"] = open("/proc/loadavg").read().split()[:3]
    except (OSError, ValueError, IndexError):
        pass
    return info


def git_rev():
    try:
        r = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "--short", "HEAD"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
        return r.stdout.decode().strip() or None
    except Exception:
        return None


# --------------------------------------------------------------------------


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Junction vs nginx benchmark (see bench/README.md)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke mode: ~1 s per scenario, 1 run, 1 worker count")
    ap.add_argument("--only", help="comma-separated scenarios: " + ",".join(SCENARIO_NAMES))
    ap.add_argument("--workers", help="worker_processes values (default 1,2; --quick: 1)")
    ap.add_argument("--runs", type=int, help="runs per proxy, alternating (default 3; --quick: 1)")
    ap.add_argument("--duration", type=int, help="seconds per wrk run (default 5; --quick: 1)")
    ap.add_argument("--warmup", type=int, help="seconds of warm-up before each run (default 1; --quick: 0)")
    ap.add_argument("--idle-conns", type=int, help="idle-10k connections (default 10000; --quick: 1000)")
    ap.add_argument("--junction", help="junction binary (default: cargo build --release)")
    ap.add_argument("--json", help="JSON output (default bench/results/DATE.json; --quick: none)")
    ap.add_argument("--no-install", action="store_true", help="never apt-get install")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (configs, logs)")
    ap.add_argument("--junction-is-nginx", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--_idle-client", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    q = a.quick
    a.workers = [int(x) for x in (a.workers or ("1" if q else "1,2")).split(",") if x.strip()]
    a.runs = a.runs if a.runs is not None else (1 if q else 3)
    a.duration = a.duration if a.duration is not None else (1 if q else 5)
    a.warmup = a.warmup if a.warmup is not None else (0 if q else 1)
    a.idle_conns = a.idle_conns if a.idle_conns is not None else (1000 if q else 10000)
    if a.only:
        a.only = [x.strip() for x in a.only.split(",") if x.strip()]
        bad = [x for x in a.only if x not in SCENARIO_NAMES]
        if bad:
            ap.error("unknown scenario(s) %s; known: %s" % (",".join(bad), ",".join(SCENARIO_NAMES)))
    if a.runs < 1 or a.duration < 1 or not a.workers:
        ap.error("--runs, --duration and --workers must be positive")
    return a


def _on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main(argv):
    a = parse_args(argv)
    if a._idle_client:
        if a._idle_client[3:] == ["tls"]:
            idle_tls_client(int(a._idle_client[0]), int(a._idle_client[1]), a._idle_client[2])
        else:
            idle_client(int(a._idle_client[0]), int(a._idle_client[1]), a._idle_client[2])
        return 0
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if inherited ignored
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    t_start = time.monotonic()
    nofile = raise_nofile()
    ensure_tools(a.no_install)

    ctx = Ctx()
    ctx.nginx, ctx.wrk = find_tool("nginx"), find_tool("wrk")
    ctx.php_fpm, ctx.uwsgi, ctx.memcached = find_php_fpm(), find_tool("uwsgi"), find_tool("memcached")
    if not ctx.nginx or not ctx.wrk:
        log("nginx and wrk are required (apt-get install nginx wrk)")
        return 1
    ctx.runs, ctx.duration, ctx.warmup, ctx.workers = a.runs, a.duration, a.warmup, a.workers
    ctx.idle_conns = a.idle_conns
    if nofile < a.idle_conns + 1000:
        ctx.idle_conns = max(100, nofile - 1000)
        log("RLIMIT_NOFILE is %d: idle connections lowered to %d" % (nofile, ctx.idle_conns))

    ctx.junction_reason = None
    if a.junction_is_nginx:
        junction_bin = ctx.nginx
    elif a.junction:
        junction_bin = os.path.abspath(a.junction)
        if not os.access(junction_bin, os.X_OK):
            ctx.junction_reason = "%s is not an executable" % a.junction
    else:
        junction_bin, ctx.junction_reason = build_junction()
    ctx.proxies = [Proxy("nginx", ctx.nginx, True),
                   Proxy("junction", junction_bin, a.junction_is_nginx)]

    scenarios = [s for s in SCENARIOS if not a.only or s.name in a.only]
    wrk_runs = sum(1 for s in scenarios if not s.idle)
    est = wrk_runs * (a.duration + len(a.workers) * 2 * a.runs * (a.duration + a.warmup + 0.7)) \
        + (len(a.workers) * 2 * a.runs * 6 if any(s.idle for s in scenarios) else 0)
    log("%d scenario(s), workers %s, %d run(s) x %ds (+%ds warm-up); estimated %.1f min" % (
        len(scenarios), ",".join(map(str, a.workers)), a.runs, a.duration, a.warmup, est / 60))

    ctx.tmp = tempfile.mkdtemp(prefix="junction-bench-")
    os.makedirs(os.path.join(ctx.tmp, "proxy-temp"))  # for *_temp_path when not root
    ctx.wrk_lua = os.path.join(ctx.tmp, "report.lua")
    with open(ctx.wrk_lua, "w") as f:
        f.write(WRK_LUA)
    ctx.backend = None

    out = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "machine": machine_info(), "git": git_rev(),
           "versions": {"nginx": version_of([ctx.nginx, "-v"]), "wrk": version_of([ctx.wrk, "-v"]),
                        "junction": junction_bin},
           "settings": {"quick": a.quick, "workers": a.workers, "runs": a.runs,
                        "duration_s": a.duration, "warmup_s": a.warmup,
                        "wrk": "-t%d -c%d --latency" % (WRK_THREADS, WRK_CONNECTIONS),
                        "idle_conns": ctx.idle_conns, "junction_is_nginx": a.junction_is_nginx},
           "scenarios": {}}
    failed = False
    interrupted = False
    try:
        for scn in scenarios:
            log("== %s: %s" % (scn.name, scn.desc))
            try:
                out["scenarios"][scn.name] = run_scenario(ctx, scn)
            except HarnessError as e:
                failed = True
                out["scenarios"][scn.name] = {"error": str(e)}
                log("%s: HARNESS ERROR: %s" % (scn.name, e))
            except KeyboardInterrupt:
                raise
            except Exception as e:
                failed = True
                out["scenarios"][scn.name] = {"error": "%s: %s" % (type(e).__name__, e)}
                log("%s: HARNESS ERROR:\n%s" % (scn.name, traceback.format_exc()))
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted; cleaning up")
    finally:
        PROCS.stop_all()
        if a.keep:
            log("work directory kept: %s" % ctx.tmp)
        else:
            shutil.rmtree(ctx.tmp, ignore_errors=True)

    out["elapsed_s"] = round(time.monotonic() - t_start, 1)
    print()
    print("Junction vs nginx, %s, %s, %s CPUs; wrk -t%d -c%d, %ds x %d run(s), medians%s" % (
        out["date"], out["machine"].get("cpu", "?"), out["machine"].get("cpus"), WRK_THREADS,
        WRK_CONNECTIONS, a.duration, a.runs,
        "; SELF-TEST: junction = nginx" if a.junction_is_nginx else ""))
    print(table(out["scenarios"], a.junction_is_nginx))
    print("(CPU s/100k: proxy CPU seconds per 100k requests; RSS/PSS: peak summed over the "
          "proxy's processes; KB/conn: idle-10k and idle-tls only; elapsed %.0f s)" % out["elapsed_s"])
    json_path = a.json
    if json_path is None and not a.quick:
        json_path = os.path.join(BENCH_DIR, "results",
                                 datetime.datetime.now().strftime("%Y-%m-%d_%H%M%S") + ".json")
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as f:
            json.dump(out, f, indent=1, sort_keys=False)
            f.write("\n")
        print("JSON: %s" % json_path)
    if interrupted:
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
