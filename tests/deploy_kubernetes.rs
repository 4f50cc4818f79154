//! The Kubernetes manifests of `deploy/kubernetes/` (issue 17, packaging): every
//! manifest passes the Kubernetes API schemas (PyPI `kubernetes-validate`, which ships
//! them, in `--strict` mode: an unknown field is an error), and a misspelled field is
//! caught (the validator really checks); the manifests fit together (the ConfigMap key
//! the container's `-c` names, probes on the status listener of that configuration,
//! selectors, the image's uid, read-only root file systems); the `junction.conf` inside
//! the ConfigMap passes `junction -t`; and that configuration, run on loopback addresses
//! (a real dnsmasq naming the Services, memcached, `tests/peers/cache_app.py`), serves
//! the caching front and is reloaded by the reloader container's script, taken from the
//! Deployment as it is, when the mounted file changes — and not when the new file is
//! broken.
//!
//! Junction-only: the configuration uses `server … resolve` (nginx 1.27.3+, not in the
//! reference nginx 1.22), `metrics` and `api` (not in nginx OSS).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod dns_kit;

use common::*;
use dns_kit::*;
use std::fs;
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

fn junction_only() -> bool {
    if proxy_kind() == Kind::Nginx {
        eprintln!(
            "deploy_kubernetes: Junction-only (`server … resolve` is nginx 1.27.3+, \
             `metrics` and `api` are not nginx OSS): skipped on nginx"
        );
        return true;
    }
    false
}

fn kube_dir() -> PathBuf {
    manifest_dir().join("deploy/kubernetes")
}

/// Every `*.yaml` of `deploy/kubernetes/`, sorted.
fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(kube_dir())
        .expect("deploy/kubernetes")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

const INSTALL: &str = "install the validator with `python3 -m pip install kubernetes-validate` \
                       (scripts/install-test-deps.sh does)";

/// `python3 -m kubernetes_validate ARGS… FILES…`.
fn validate(args: &[&str], files: &[PathBuf]) -> Output {
    let probe = run(Command::new("python3").args(["-m", "kubernetes_validate", "--version"]));
    assert_eq!(
        probe.code,
        Some(0),
        "kubernetes-validate is needed by this test: {INSTALL}\n{}",
        probe.stderr
    );
    run(Command::new("python3")
        .args(["-m", "kubernetes_validate"])
        .args(args)
        .args(files))
}

/// Every document of the YAML `files`, as JSON (PyYAML reads them).
fn documents(files: &[PathBuf]) -> Vec<Json> {
    let out = run(Command::new("python3")
        .arg("-c")
        .arg(
            "import json, sys\n\
             try:\n    import yaml\n\
             except ImportError:\n    sys.exit('PyYAML is needed: apt-get install -y python3-yaml \
             or python3 -m pip install PyYAML (scripts/install-test-deps.sh does)')\n\
             docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d is not None]\n\
             print(json.dumps(docs))\n",
        )
        .args(files));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    match parse_json(&out.stdout).expect("JSON from PyYAML") {
        Json::Array(docs) => docs,
        other => panic!("not a list: {other}"),
    }
}

/// The document of `kind` named `name`.
fn find<'a>(docs: &'a [Json], kind: &str, name: &str) -> &'a Json {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes/"))
}

fn container<'a>(deployment: &'a Json, name: &str) -> &'a Json {
    deployment["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

/// The junction.conf of the ConfigMap, and the path the Deployment reads it from.
fn configmap_conf(docs: &[Json]) -> (String, String) {
    let cm = find(docs, "ConfigMap", "junction-config");
    let conf = cm["data"]["junction.conf"]
        .as_str()
        .expect("junction.conf in the ConfigMap")
        .to_string();
    (conf, "/etc/junction/conf/junction.conf".to_string())
}

// ---------------------------------------------------------------------------------------------
// Schemas
// ---------------------------------------------------------------------------------------------

#[test]
fn every_manifest_passes_the_kubernetes_schemas() {
    let files = manifest_files();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for want in [
        "configmap.yaml",
        "deployment.yaml",
        "service.yaml",
        "memcached.yaml",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let docs = documents(&files);
    // The validator's newest Kubernetes and an older one still in wide use.
    for version in [None, Some("1.27")] {
        let mut args = vec!["--strict"];
        if let Some(v) = version {
            args.extend(["-k", v]);
        }
        let out = validate(&args, &files);
        let text = format!("{}{}", out.stdout, out.stderr);
        assert_eq!(out.code, Some(0), "kubernetes-validate {args:?}:\n{text}");
        assert!(!text.contains("ERROR") && !text.contains("WARN"), "{text}");
        // Each document was checked, none skipped.
        assert_eq!(
            text.matches(" passed for resource ").count(),
            docs.len(),
            "{text}"
        );
    }
}

#[test]
fn the_validator_rejects_a_misspelled_field_and_a_wrong_type() {
    let dir = tempfile::tempdir().unwrap();
    let good = fs::read_to_string(kube_dir().join("deployment.yaml")).unwrap();
    for (what, from, to) in [
        (
            "unknown field",
            "shareProcessNamespace: true",
            "shareProcessNamespaces: true",
        ),
        ("wrong type", "replicas: 2", "replicas: two"),
    ] {
        assert!(good.contains(from), "{from}");
        let path = dir.path().join("deployment.yaml");
        fs::write(&path, good.replacen(from, to, 1)).unwrap();
        let out = validate(&["--strict"], &[path]);
        assert_eq!(
            out.code,
            Some(1),
            "{what} not caught:\n{}{}",
            out.stdout,
            out.stderr
        );
        assert!(
            format!("{}{}", out.stdout, out.stderr).contains("did not validate"),
            "{what}: {}{}",
            out.stdout,
            out.stderr
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The manifests fit together
// ---------------------------------------------------------------------------------------------

#[test]
fn the_manifests_fit_together() {
    let docs = documents(&manifest_files());
    let dep = find(&docs, "Deployment", "junction");
    let spec = &dep["spec"];
    assert!(spec["replicas"].as_u64().unwrap() >= 2, "several replicas");
    let pod = &spec["template"]["spec"];
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(&spec["selector"]["matchLabels"], labels);
    assert_eq!(
        pod["shareProcessNamespace"], true,
        "the reloader signals Junction"
    );

    // The configuration: the ConfigMap mounted as a directory (no subPath, which the
    // kubelet never updates), its key the file `-c` names.
    let (conf, conf_path) = configmap_conf(&docs);
    let junction = container(dep, "junction");
    let args: Vec<&str> = junction["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args, ["-c", conf_path.as_str()]);
    let volumes = pod["volumes"].as_array().unwrap();
    let config_volume = volumes
        .iter()
        .find(|v| v["configMap"]["name"] == "junction-config")
        .expect("a volume of the ConfigMap");
    let mount_of = |c: &Json, volume: &Json| -> String {
        let m = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == volume["name"])
            .unwrap_or_else(|| panic!("{} does not mount {}", c["name"], volume["name"]))
            .clone();
        assert!(m.get("subPath").is_none(), "no subPath: {m}");
        m["mountPath"].as_str().unwrap().to_string()
    };
    let reloader = container(dep, "reloader");
    for c in [junction, reloader] {
        assert_eq!(
            format!("{}/junction.conf", mount_of(c, config_volume)),
            conf_path,
            "{}",
            c["name"]
        );
    }
    // The pid file is on a volume both containers share (`-s reload` reads it).
    let pid = conf
        .lines()
        .find_map(|l| l.trim().strip_prefix("pid "))
        .expect("pid in junction.conf")
        .trim_end_matches(';');
    let state = volumes
        .iter()
        .find(|v| v.get("emptyDir").is_some())
        .expect("an emptyDir");
    for c in [junction, reloader] {
        assert!(
            pid.starts_with(&format!("{}/", mount_of(c, state))),
            "{pid} on {}'s emptyDir",
            c["name"]
        );
    }
    let script = reloader["args"][0].as_str().unwrap();
    assert!(
        script.contains("-s reload") && script.contains(" -t "),
        "{script}"
    );

    // Probes: the status listener of the configuration, stub_status at the path.
    let port_of = |name: &str| -> u64 {
        junction["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no port {name}"))["containerPort"]
            .as_u64()
            .unwrap()
    };
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = &junction[probe]["httpGet"];
        assert_eq!(get["path"], "/status", "{probe}");
        let port = port_of(get["port"].as_str().unwrap());
        assert!(
            conf.contains(&format!("listen {port};")),
            "{probe}: port {port} is a listener of junction.conf"
        );
    }
    assert!(conf.contains("location = /status { stub_status; }"));
    assert!(conf.contains(&format!("listen {};", port_of("http"))));

    // Security: non-root with the image's uid, read-only root, no capabilities.
    let dockerfile = fs::read_to_string(manifest_dir().join("deploy/docker/Dockerfile")).unwrap();
    let uid: u64 = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .and_then(|u| u.split(':').next())
        .and_then(|u| u.trim().parse().ok())
        .expect("a numeric USER in the Dockerfile");
    for d in ["junction", "memcached"] {
        let dep = find(&docs, "Deployment", d);
        let pod = &dep["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{d}");
        for c in pod["containers"].as_array().unwrap() {
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{d}/{}", c["name"]);
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{d}/{}", c["name"]);
            assert!(
                c["resources"]["limits"]["memory"].is_string(),
                "{d}/{}",
                c["name"]
            );
        }
    }
    assert_eq!(pod["securityContext"]["runAsUser"].as_u64(), Some(uid));

    // The Services select the pods and name their ports; junction.conf reaches
    // memcached through its Service's name and port.
    for (svc, dep_name) in [("junction", "junction"), ("memcached", "memcached")] {
        let s = find(&docs, "Service", svc);
        let d = find(&docs, "Deployment", dep_name);
        assert_eq!(
            s["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"],
            "{svc}"
        );
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        for p in s["spec"]["ports"].as_array().unwrap() {
            let target = p["targetPort"].as_str().unwrap();
            assert!(
                c["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|cp| cp["name"] == target),
                "{svc}: targetPort {target}"
            );
        }
    }
    let mc_port = find(&docs, "Service", "memcached")["spec"]["ports"][0]["port"]
        .as_u64()
        .unwrap();
    assert!(
        conf.contains(&format!(
            "server memcached.default.svc.cluster.local:{mc_port} resolve;"
        )),
        "{conf}"
    );
}

// ---------------------------------------------------------------------------------------------
// The configuration
// ---------------------------------------------------------------------------------------------

#[test]
fn the_configmap_junction_conf_passes_junction_t() {
    if junction_only() {
        return;
    }
    let docs = documents(&[kube_dir().join("configmap.yaml")]);
    let (conf, _) = configmap_conf(&docs);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("junction.conf");
    fs::write(&path, &conf).unwrap();
    let out = check_config_file(&path);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(out.stderr.contains("test is successful"), "{}", out.stderr);
}

/// `text` with `from` replaced by `to`, which must be there.
fn swap(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not in junction.conf");
    text.replace(from, to)
}

/// The ConfigMap's configuration running on loopback: Junction in its own prefix.
struct Running {
    dir: tempfile::TempDir,
    http: u16,
    status: u16,
    child: Child,
}

impl Running {
    fn conf_path(&self) -> PathBuf {
        self.dir.path().join("conf/junction.conf")
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Reloads taken (`generation` of the JSON API on the status listener).
    fn generation(&self) -> u64 {
        let r = http_request(
            self.status,
            get_request("monitor", "/api/9/nginx").as_bytes(),
        );
        let j = parse_json(&r.text()).unwrap_or_else(|e| panic!("{e}: {}", r.describe()));
        j["generation"].as_u64().unwrap()
    }

    /// Replaces the configuration as the kubelet does: a new file moved into place.
    fn replace_conf(&self, text: &str) {
        let tmp = self.dir.path().join("conf.new");
        fs::write(&tmp, text).unwrap();
        fs::rename(&tmp, self.conf_path()).unwrap();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the ConfigMap's junction.conf with its addresses made loopback ones: the
/// cluster DNS → `dns`, the Services' ports → the app's and memcached's, the listeners
/// and pid file → free ports and the temp dir.
fn run_conf(conf: &str, dns: &Dns, app_port: u16, mc_port: u16) -> (Running, String) {
    let dir = tempfile::Builder::new()
        .prefix("junction-k8s-")
        .tempdir()
        .unwrap();
    let d = dir.path().to_str().unwrap().to_string();
    fs::create_dir_all(dir.path().join("conf")).unwrap();
    let (http, status) = (free_port(), free_port());
    let mut text = swap(
        conf,
        "resolver 10.96.0.10 ",
        &format!("resolver {} ", dns.addr()),
    );
    text = swap(
        &text,
        "app.default.svc.cluster.local:8080",
        &format!("app.default.svc.cluster.local:{app_port}"),
    );
    text = swap(
        &text,
        "memcached.default.svc.cluster.local:11211",
        &format!("memcached.default.svc.cluster.local:{mc_port}"),
    );
    text = swap(&text, "listen 8080;", &format!("listen 127.0.0.1:{http};"));
    text = swap(
        &text,
        "listen 8081;",
        &format!("listen 127.0.0.1:{status};"),
    );
    text = swap(
        &text,
        "pid /var/lib/junction/junction.pid;",
        &format!("pid {d}/junction.pid;"),
    );
    let conf_path = dir.path().join("conf/junction.conf");
    fs::write(&conf_path, &text).unwrap();
    let child = Command::new(junction_bin())
        .arg("-p")
        .arg(format!("{d}/"))
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(fs::File::create(dir.path().join("stdout.log")).unwrap())
        .stderr(fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .expect("start junction");
    let mut running = Running {
        dir,
        http,
        status,
        child,
    };
    // Ready: the pid file is written and the listener accepts.
    let pid_file = running.dir.path().join("junction.pid");
    let deadline = Instant::now() + READY_TIMEOUT;
    while !(pid_file.exists() && TcpStream::connect((Ipv4Addr::LOCALHOST, http)).is_ok()) {
        if let Ok(Some(st)) = running.child.try_wait() {
            panic!("junction exited with {st}:\n{}", running.log());
        }
        assert!(
            Instant::now() < deadline,
            "junction not ready:\n{}",
            running.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    (running, text)
}

/// The reloader container's script from the Deployment, run here with its paths
/// (environment variables the script reads) pointed at `running`.
struct Reloader {
    child: Child,
    log: PathBuf,
}

impl Reloader {
    fn start(docs: &[Json], running: &Running) -> Reloader {
        let dep = find(docs, "Deployment", "junction");
        let r = container(dep, "reloader");
        let command: Vec<&str> = r["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(command, ["/bin/sh", "-c"]);
        let script = r["args"][0].as_str().unwrap();
        let log = running.dir.path().join("reloader.log");
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .env("JUNCTION", junction_bin())
            .env("JUNCTION_CONF", running.conf_path())
            .env(
                "JUNCTION_PREFIX",
                format!("{}/", running.dir.path().display()),
            )
            .env("RELOAD_CHECK_EVERY", "0.2")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(running.dir.path().join("reloader.err")).unwrap())
            .process_group(0)
            .spawn()
            .expect("/bin/sh");
        let r = Reloader { child, log };
        r.wait_log("reloader: watching", 1);
        r
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the script printed `needle` `n` times.
    fn wait_log(&self, needle: &str, n: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let log = self.log();
            if log.matches(needle).count() >= n {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the reloader did not print {needle:?} ({n}×):\n{log}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        // The shell and its `sleep`: the whole process group the test started.
        let _ = Command::new("kill")
            .arg("--")
            .arg(format!("-{}", self.child.id()))
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_configmap_config_serves_and_the_reloader_reloads_it_on_change() {
    if junction_only() {
        return;
    }
    let files = manifest_files();
    let docs = documents(&files);
    let (conf, _) = configmap_conf(&docs);
    let mc = Memcached::start();
    let app = Peer::python(
        "cache_app.py",
        &["--memcached", &mc.port.to_string(), "--bind", "127.0.0.2"],
    );
    // The cluster DNS: the Services' names (a headless Service: the app's pod address).
    let dns = Dns::start(
        &[
            ("app.default.svc.cluster.local", "127.0.0.2"),
            ("memcached.default.svc.cluster.local", "127.0.0.1"),
        ],
        1,
    );
    let (running, text) = run_conf(&conf, &dns, app.port, mc.port);

    // The caching front: a miss made by the app (which stores it), then a hit.
    let get = |path: &str| http_request(running.http, get_request("shop.test", path).as_bytes());
    let miss = get("/k8s/1.html");
    assert_eq!(miss.status, 200, "{}\n{}", miss.describe(), running.log());
    assert_eq!(miss.text(), "GET /k8s/1.html hit 1\n");
    let hit = get("/k8s/1.html");
    assert_eq!(hit.status, 200, "{}", hit.describe());
    assert_eq!(hit.body, miss.body);
    assert_eq!(
        hit.header("Content-Type"),
        Some("text/html"),
        "from memcached"
    );
    // The probe's page, as the kubelet reads it.
    let status = http_request(running.status, get_request("probe", "/status").as_bytes());
    assert_eq!(status.status, 200, "{}", status.describe());
    assert!(
        status.text().starts_with("Active connections: "),
        "{}",
        status.describe()
    );
    assert_eq!(running.generation(), 0);

    // The ConfigMap changes: the reloader reloads Junction.
    let reloader = Reloader::start(&docs, &running);
    let v2 = swap(
        &text,
        "server_name _;\n\n        location / {",
        "server_name _;\n        add_header X-Config v2;\n\n        location / {",
    );
    running.replace_conf(&v2);
    reloader.wait_log("reloader: reloaded", 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while running.generation() < 1 {
        assert!(Instant::now() < deadline, "no reload:\n{}", running.log());
        thread::sleep(Duration::from_millis(20));
    }
    let r = get("/k8s/2.html");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("X-Config"), Some("v2"), "{}", r.describe());

    // A broken configuration is refused by the script's -t: no reload, still serving.
    running.replace_conf(&format!("{v2}\nno_such_directive on;\n"));
    let log = reloader.wait_log("new configuration refused", 1);
    assert_eq!(log.matches("reloader: reloaded").count(), 1, "{log}");
    assert_eq!(running.generation(), 1);
    let r = get("/k8s/1.html");
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("X-Config"), Some("v2"));
}
