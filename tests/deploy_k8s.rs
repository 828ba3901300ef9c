//! `deploy/k8s/`: every manifest is valid against the Kubernetes API schemas (PyPI
//! `kubernetes-validate --strict`, installed by `scripts/test-deps/k8s.sh`; no cluster
//! runs here), and the manifests agree with each other and with the server: Service and
//! PodDisruptionBudget selectors match pod templates, named ports exist, every ConfigMap
//! and Secret (and key) referenced is defined, the HorizontalPodAutoscalers scale on
//! memory at 75 % and on CPU, the TOML in the ConfigMap is a config our own parser
//! accepts with the ports the pods declare, and every probe path answers 200 on the
//! listener it targets in a running Sightline.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sightline::{Config, Listen, Role};

use common::{TestServer, run_command};

const K8S_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/k8s");
const GRAFANA_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana");

fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(K8S_DIR)
        .expect("deploy/k8s exists")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "too few manifests: {files:?}");
    files
}

/// Every YAML document of every manifest, as JSON (PyYAML, installed by es.sh).
fn documents() -> Vec<Value> {
    let script = "import json, sys, yaml\n\
                  docs = [d for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d]\n\
                  json.dump(docs, sys.stdout)";
    let mut command = Command::new("python3");
    command.args(["-c", script]).args(manifest_files());
    let text = run_command(&mut command);
    match serde_json::from_str(&text).expect("manifests as JSON") {
        Value::Array(docs) => docs,
        other => panic!("expected a list of documents, got {other}"),
    }
}

fn kubernetes_validate(files: &[PathBuf]) -> std::process::Output {
    Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "--no-warn"])
        .args(files)
        .output()
        .expect("python3 -m kubernetes_validate runs (scripts/test-deps/k8s.sh installs it)")
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().expect("kind")
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().expect("metadata.name")
}

fn of_kind<'a>(docs: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    docs.iter().filter(|doc| kind(doc) == wanted).collect()
}

fn find<'a>(docs: &'a [Value], wanted_kind: &str, wanted_name: &str) -> Option<&'a Value> {
    docs.iter()
        .find(|doc| kind(doc) == wanted_kind && name(doc) == wanted_name)
}

/// Deployments and StatefulSets.
fn workloads(docs: &[Value]) -> Vec<&Value> {
    docs.iter()
        .filter(|doc| matches!(kind(doc), "Deployment" | "StatefulSet"))
        .collect()
}

fn labels(value: &Value) -> BTreeMap<String, String> {
    value
        .as_object()
        .map(|map| {
            map.iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("label value").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, pod_labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
}

fn pod_labels(workload: &Value) -> BTreeMap<String, String> {
    labels(&workload["spec"]["template"]["metadata"]["labels"])
}

fn containers(workload: &Value) -> Vec<&Value> {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .collect()
}

fn is_sightline(container: &Value) -> bool {
    container["image"]
        .as_str()
        .is_some_and(|image| image.starts_with("sightline"))
}

/// Named container ports of a workload: name → number.
fn container_ports(workload: &Value) -> BTreeMap<String, u64> {
    containers(workload)
        .iter()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|port| {
            Some((
                port["name"].as_str()?.to_string(),
                port["containerPort"].as_u64()?,
            ))
        })
        .collect()
}

/// The config file of the `sightline-config` ConfigMap, parsed by our own parser.
fn configmap_config(docs: &[Value]) -> Config {
    let configmap = find(docs, "ConfigMap", "sightline-config").expect("sightline-config");
    let text = configmap["data"]["sightline.toml"]
        .as_str()
        .expect("sightline.toml key");
    toml::from_str(text).unwrap_or_else(|e| panic!("the ConfigMap's config does not parse: {e}"))
}

#[test]
fn manifests_pass_the_kubernetes_schemas() {
    let files = manifest_files();
    let output = kubernetes_validate(&files);
    assert!(
        output.status.success(),
        "kubernetes-validate failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // The validator does reject what is wrong: a misspelt field, a wrong type.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: two\n  \
         selector:\n    matchLabels: {a: b}\n  template:\n    metadata:\n      labels: {a: b}\n    \
         spec:\n      containerz: []\n",
    )
    .unwrap();
    assert!(!kubernetes_validate(&[broken]).status.success());
}

#[test]
fn every_kind_the_deployment_needs_is_there() {
    let docs = documents();
    let ingester = find(&docs, "StatefulSet", "sightline-ingester").expect("ingester StatefulSet");
    assert!(
        !ingester["spec"]["volumeClaimTemplates"][0].is_null(),
        "the ingester's WAL lives on a PersistentVolumeClaim"
    );
    let querier = find(&docs, "Deployment", "sightline-querier").expect("querier Deployment");
    let compactor = find(&docs, "Deployment", "sightline-compactor").expect("compactor");
    assert_eq!(compactor["spec"]["replicas"], 1);
    let roles: Vec<Role> = [ingester, querier, compactor]
        .iter()
        .map(|workload| {
            let container = containers(workload)[0];
            let args: Vec<&str> = container["args"]
                .as_array()
                .expect("args")
                .iter()
                .map(|a| a.as_str().expect("arg"))
                .collect();
            assert_eq!(args[0], "serve", "{}", name(workload));
            let at = args.iter().position(|a| *a == "--role").expect("--role");
            args[at + 1].parse().expect("a valid role")
        })
        .collect();
    assert_eq!(roles, [Role::Ingest, Role::Query, Role::Compact]);

    let headless = of_kind(&docs, "Service")
        .into_iter()
        .find(|svc| svc["spec"]["clusterIP"] == "None")
        .expect("a headless Service");
    assert_eq!(ingester["spec"]["serviceName"], name(headless));
    assert!(selects(
        &labels(&headless["spec"]["selector"]),
        &pod_labels(ingester)
    ));
    let cluster_ip = of_kind(&docs, "Service")
        .into_iter()
        .filter(|svc| svc["spec"]["clusterIP"] != "None")
        .count();
    assert!(
        cluster_ip >= 2,
        "ClusterIP Services for writes and for queries"
    );
    assert!(!of_kind(&docs, "PodDisruptionBudget").is_empty());
}

#[test]
fn selectors_and_named_ports_match_pod_templates() {
    let docs = documents();
    for workload in workloads(&docs) {
        let selector = labels(&workload["spec"]["selector"]["matchLabels"]);
        assert!(
            selects(&selector, &pod_labels(workload)),
            "{} does not select its own pods",
            name(workload)
        );
        for container in containers(workload) {
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                if let Some(port) = container[probe]["httpGet"]["port"].as_str() {
                    assert!(
                        container_ports(workload).contains_key(port),
                        "{} {probe} names port {port} that the container lacks",
                        name(workload)
                    );
                }
            }
        }
    }
    for service in of_kind(&docs, "Service") {
        let selector = labels(&service["spec"]["selector"]);
        let targets: Vec<&Value> = workloads(&docs)
            .into_iter()
            .filter(|w| selects(&selector, &pod_labels(w)))
            .collect();
        assert!(
            !targets.is_empty(),
            "Service {} selects no pod template",
            name(service)
        );
        for port in service["spec"]["ports"].as_array().expect("ports") {
            if let Some(target) = port["targetPort"].as_str() {
                for workload in &targets {
                    assert!(
                        container_ports(workload).contains_key(target),
                        "Service {} targets port {target} missing from {}",
                        name(service),
                        name(workload)
                    );
                }
            }
        }
    }
    for pdb in of_kind(&docs, "PodDisruptionBudget") {
        let selector = labels(&pdb["spec"]["selector"]["matchLabels"]);
        assert!(
            workloads(&docs)
                .iter()
                .any(|w| selects(&selector, &pod_labels(w))),
            "PodDisruptionBudget {} selects no pod template",
            name(pdb)
        );
    }
}

#[test]
fn autoscalers_scale_on_memory_at_75_percent_and_on_cpu() {
    let docs = documents();
    let autoscalers = of_kind(&docs, "HorizontalPodAutoscaler");
    assert!(!autoscalers.is_empty());
    for hpa in autoscalers {
        assert_eq!(hpa["apiVersion"], "autoscaling/v2");
        let target = &hpa["spec"]["scaleTargetRef"];
        let workload = find(
            &docs,
            target["kind"].as_str().expect("kind"),
            target["name"].as_str().expect("name"),
        )
        .unwrap_or_else(|| panic!("{} scales a missing workload", name(hpa)));
        let metrics: BTreeMap<&str, u64> = hpa["spec"]["metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .map(|m| {
                (
                    m["resource"]["name"].as_str().expect("resource metric"),
                    m["resource"]["target"]["averageUtilization"]
                        .as_u64()
                        .expect("utilization"),
                )
            })
            .collect();
        assert_eq!(metrics.get("memory"), Some(&75), "{}", name(hpa));
        assert!(metrics.contains_key("cpu"), "{}", name(hpa));
        // Utilization is relative to the request: every container must have one.
        for container in containers(workload) {
            for resource in ["cpu", "memory"] {
                assert!(
                    container["resources"]["requests"][resource].is_string(),
                    "{} has no {resource} request",
                    name(workload)
                );
            }
        }
    }
}

#[test]
fn every_configmap_and_secret_referenced_exists() {
    let docs = documents();
    let keys_of = |kind_name: &str, object: &str| -> BTreeSet<String> {
        let doc = find(&docs, kind_name, object)
            .unwrap_or_else(|| panic!("{kind_name} {object} is referenced but not defined"));
        let mut keys = BTreeSet::new();
        for field in ["data", "stringData", "binaryData"] {
            if let Some(map) = doc[field].as_object() {
                keys.extend(map.keys().cloned());
            }
        }
        keys
    };
    let mut references = 0;
    for workload in workloads(&docs) {
        let pod = &workload["spec"]["template"]["spec"];
        for volume in pod["volumes"].as_array().cloned().unwrap_or_default() {
            for (kind_name, source, name_field) in [
                ("ConfigMap", "configMap", "name"),
                ("Secret", "secret", "secretName"),
            ] {
                let Some(object) = volume[source][name_field].as_str() else {
                    continue;
                };
                let keys = keys_of(kind_name, object);
                for item in volume[source]["items"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                {
                    let key = item["key"].as_str().expect("item key");
                    assert!(keys.contains(key), "{kind_name} {object} has no key {key}");
                }
                references += 1;
            }
        }
        for container in containers(workload) {
            for env in container["env"].as_array().cloned().unwrap_or_default() {
                for (kind_name, reference) in
                    [("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")]
                {
                    let source = &env["valueFrom"][reference];
                    if let Some(object) = source["name"].as_str() {
                        let key = source["key"].as_str().expect("key");
                        assert!(
                            keys_of(kind_name, object).contains(key),
                            "{kind_name} {object} has no key {key}"
                        );
                        references += 1;
                    }
                }
            }
            for from in container["envFrom"].as_array().cloned().unwrap_or_default() {
                if let Some(object) = from["configMapRef"]["name"].as_str() {
                    keys_of("ConfigMap", object);
                }
                if let Some(object) = from["secretRef"]["name"].as_str() {
                    keys_of("Secret", object);
                }
            }
        }
    }
    assert!(references >= 10, "only {references} references checked");
}

/// The file a container sees at `path`, as (volume, key) when a ConfigMap or Secret
/// volume mounted above it provides it.
fn mounted_key(workload: &Value, container: &Value, path: &str) -> Option<(String, String)> {
    let pod = &workload["spec"]["template"]["spec"];
    let mounts = container["volumeMounts"].as_array()?;
    // The longest mount path wins, as in a real container.
    let mount = mounts
        .iter()
        .filter(|m| {
            let at = m["mountPath"].as_str().unwrap_or("/nowhere");
            path.starts_with(&format!("{at}/"))
        })
        .max_by_key(|m| m["mountPath"].as_str().map_or(0, str::len))?;
    let relative = &path[mount["mountPath"].as_str()?.len() + 1..];
    let volume = pod["volumes"]
        .as_array()?
        .iter()
        .find(|v| v["name"] == mount["name"])?;
    let (source, object) = if let Some(name) = volume["configMap"]["name"].as_str() {
        (&volume["configMap"], name)
    } else {
        (&volume["secret"], volume["secret"]["secretName"].as_str()?)
    };
    let key = match source["items"].as_array() {
        Some(items) => items.iter().find(|item| item["path"] == relative)?["key"]
            .as_str()?
            .to_string(),
        None => relative.to_string(),
    };
    Some((object.to_string(), key))
}

#[test]
fn the_configmap_holds_a_config_our_parser_accepts() {
    let docs = documents();
    let config = configmap_config(&docs);
    // Shared catalog and object store, as a scaled-out deployment needs.
    assert!(
        config
            .storage
            .url
            .as_deref()
            .is_some_and(|url| url.starts_with("s3://"))
    );
    let catalog = &config.storage.catalog;
    assert!(
        catalog
            .url
            .as_deref()
            .is_some_and(|url| url.starts_with("postgres://"))
    );
    catalog.validate().expect("the catalog section is valid");
    // The s3:// store is checked by the object-storage build (issue 8 part A); every
    // other key must already be valid.
    let mut local = config.clone();
    local.storage.url = None;
    local.validate().expect("the rest of the config is valid");

    let listeners: BTreeMap<u16, &str> = [
        (config.server.listen.port(), "listen"),
        (config.server.grpc_listen.port(), "grpc_listen"),
    ]
    .into_iter()
    .chain(
        [
            (config.server.otlp_http_listen, "otlp_http_listen"),
            (config.server.jaeger_listen, "jaeger_listen"),
        ]
        .into_iter()
        .filter_map(|(listen, key)| Some((listen.addr()?.port(), key))),
    )
    .collect();
    for workload in workloads(&docs) {
        for container in containers(workload).into_iter().filter(|c| is_sightline(c)) {
            for (port_name, number) in container_ports(workload) {
                assert!(
                    listeners.contains_key(&(number as u16)),
                    "{} port {port_name} ({number}) is no listener of the config",
                    name(workload)
                );
            }
            let args: Vec<&str> = container["args"]
                .as_array()
                .expect("args")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let at = args
                .iter()
                .position(|a| *a == "--config")
                .expect("--config");
            let (object, key) = mounted_key(workload, container, args[at + 1])
                .expect("the --config file is a mounted ConfigMap key");
            assert_eq!(
                (object.as_str(), key.as_str()),
                ("sightline-config", "sightline.toml")
            );
            let password = catalog.password_file.as_ref().expect("password_file");
            let (object, key) = mounted_key(workload, container, password.to_str().unwrap())
                .expect("the catalog password file is mounted");
            let secret = find(&docs, "Secret", &object).expect("the password's Secret");
            assert!(
                secret["stringData"][&key].is_string(),
                "{object} lacks {key}"
            );
            let data_dir = config.server.data_dir.to_str().unwrap();
            assert!(
                container["volumeMounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|m| m["mountPath"] == data_dir),
                "{}: server.data_dir is not a mounted volume",
                name(workload)
            );
        }
    }
}

#[test]
fn grafana_provisioning_equals_deploy_grafana() {
    let docs = documents();
    for (configmap, key, file) in [
        (
            "sightline-grafana-datasources",
            "datasources.yaml",
            "datasources.yaml",
        ),
        (
            "sightline-grafana-dashboard-provider",
            "dashboards.yaml",
            "dashboards.yaml",
        ),
        (
            "sightline-grafana-dashboards",
            "sightline-overview.json",
            "dashboards/sightline-overview.json",
        ),
    ] {
        let doc = find(&docs, "ConfigMap", configmap).expect(configmap);
        let expected = std::fs::read_to_string(Path::new(GRAFANA_DIR).join(file)).unwrap();
        assert!(
            doc["data"][key].as_str() == Some(expected.as_str()),
            "{configmap} differs from deploy/grafana/{file}: run deploy/k8s/gen-grafana.sh"
        );
    }
    // The datasources point at the query Service's name and ports.
    let service = find(&docs, "Service", "sightline").expect("Service sightline");
    let ports: BTreeSet<u64> = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["port"].as_u64())
        .collect();
    assert_eq!(ports, BTreeSet::from([7700, 16686]));
}

#[tokio::test]
async fn every_probe_answers_on_its_listener() {
    let docs = documents();
    let config = configmap_config(&docs);
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    let server = TestServer::start_with(|c| {
        c.server.jaeger_listen = Listen::On(any);
    })
    .await;
    let running = server.running.as_ref().unwrap();
    // Container port (from the ConfigMap's listeners) → the test server's bound address.
    let mut bound: BTreeMap<u16, SocketAddr> = BTreeMap::new();
    bound.insert(config.server.listen.port(), running.http_addr());
    if let (Some(port), Some(addr)) = (
        config.server.otlp_http_listen.addr(),
        running.otlp_http_addr(),
    ) {
        bound.insert(port.port(), addr);
    }
    if let (Some(port), Some(addr)) = (config.server.jaeger_listen.addr(), running.jaeger_addr()) {
        bound.insert(port.port(), addr);
    }
    let client = reqwest::Client::new();
    let mut probes = 0;
    for workload in workloads(&docs) {
        for container in containers(workload).into_iter().filter(|c| is_sightline(c)) {
            let ports = container_ports(workload);
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                let get = &container[probe]["httpGet"];
                if get.is_null() {
                    assert_ne!(
                        probe,
                        "livenessProbe",
                        "{} has no liveness probe",
                        name(workload)
                    );
                    assert_ne!(
                        probe,
                        "readinessProbe",
                        "{} has no readiness probe",
                        name(workload)
                    );
                    continue;
                }
                let port = match &get["port"] {
                    Value::String(named) => ports[named.as_str()],
                    other => other.as_u64().expect("port"),
                } as u16;
                let path = get["path"].as_str().expect("path");
                let addr = bound
                    .get(&port)
                    .unwrap_or_else(|| panic!("{probe} port {port} is no HTTP listener"));
                let response = client
                    .get(format!("http://{addr}{path}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    response.status(),
                    200,
                    "{} {probe} GET {path} on {port}",
                    name(workload)
                );
                probes += 1;
            }
        }
    }
    assert!(probes >= 7, "only {probes} probes checked");
    server.stop().await;
}
