//! The REST surface over a real socket: discovery, CRUD, patches, apply, dry-run, errors,
//! selectors, paging, deletion and Services.

use serde_json::{Value, json};

use crate::support::{apply, cluster, configmap, deployment, get, http, send_json};

const CM: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOY: &str = "/apis/apps/v1/namespaces/default/deployments";

#[tokio::test]
async fn version_health_and_discovery() {
    let c = cluster().await;
    let a = c.addr();
    let v = get(a, "/version?timeout=5s").await.json();
    assert_eq!(
        (v["major"].as_str(), v["minor"].as_str()),
        (Some("1"), Some("32"))
    );
    assert_eq!(get(a, "/healthz").await.status, 200);
    assert_eq!(get(a, "/readyz").await.status, 200);
    assert_eq!(get(a, "/api").await.json()["kind"], "APIVersions");
    assert_eq!(get(a, "/apis").await.json()["kind"], "APIGroupList");
    let agg_accept =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let agg = http(a, "GET", "/apis", &[("Accept", agg_accept)], b"").await;
    assert_eq!(
        agg.header("content-type"),
        Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")
    );
    assert_eq!(agg.json()["kind"], "APIGroupDiscoveryList");
    let apps = get(a, "/apis/apps/v1").await.json();
    assert!(
        apps["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "deployments/scale")
    );
    assert!(get(a, "/openapi/v3").await.json()["paths"]["apis/apps/v1"].is_object());
    let nf = get(a, "/apis/nope/v1/things").await;
    assert_eq!(nf.status, 404);
    assert_eq!(
        nf.json()["message"],
        "the server could not find the requested resource"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn crud_errors_and_no_op_writes() {
    let c = cluster().await;
    let a = c.addr();
    let created = send_json(
        a,
        "POST",
        CM,
        "application/json",
        &configmap("cfg", json!({"a": "1"})),
    )
    .await;
    assert_eq!(created.status, 201);
    let obj = created.json();
    let rv = obj["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        obj["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| u.len() == 36)
    );
    assert!(obj["metadata"]["creationTimestamp"].is_string());

    let dup = send_json(
        a,
        "POST",
        CM,
        "application/json",
        &configmap("cfg", json!({})),
    )
    .await;
    assert_eq!(dup.status, 409);
    assert_eq!(dup.json()["reason"], "AlreadyExists");
    assert_eq!(dup.json()["message"], "configmaps \"cfg\" already exists");

    let missing = get(a, &format!("{DEPLOY}/web")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json(),
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"deployments.apps \"web\" not found",
               "reason":"NotFound","details":{"name":"web","group":"apps","kind":"deployments"},"code":404})
    );

    // A stale resourceVersion on PUT conflicts.
    let mut stale = configmap("cfg", json!({"a": "2"}));
    stale["metadata"]["resourceVersion"] = json!("1");
    let conflict = send_json(a, "PUT", &format!("{CM}/cfg"), "application/json", &stale).await;
    assert_eq!(conflict.status, 409);
    assert_eq!(conflict.json()["reason"], "Conflict");

    // A merge patch that changes nothing keeps the resourceVersion.
    let same = send_json(
        a,
        "PATCH",
        &format!("{CM}/cfg"),
        "application/merge-patch+json",
        &json!({"data": {"a": "1"}}),
    )
    .await;
    assert_eq!(same.status, 200);
    assert_eq!(same.json()["metadata"]["resourceVersion"], rv.as_str());

    // Dry-run changes nothing.
    let dry = send_json(
        a,
        "PATCH",
        &format!("{CM}/cfg?dryRun=All"),
        "application/merge-patch+json",
        &json!({"data": {"a": "9"}}),
    )
    .await;
    assert_eq!(dry.json()["data"]["a"], "9");
    assert_eq!(dry.json()["metadata"]["resourceVersion"], rv.as_str());
    assert_eq!(get(a, &format!("{CM}/cfg")).await.json()["data"]["a"], "1");

    // JSON patch and strategic merge patch.
    let jp = send_json(
        a,
        "PATCH",
        &format!("{CM}/cfg"),
        "application/json-patch+json",
        &json!([{"op": "add", "path": "/data/b", "value": "2"}]),
    )
    .await;
    assert_eq!(jp.json()["data"], json!({"a": "1", "b": "2"}));
    let smp = send_json(
        a,
        "PATCH",
        &format!("{CM}/cfg"),
        "application/strategic-merge-patch+json",
        &json!({"data": {"b": null}}),
    )
    .await;
    assert_eq!(smp.json()["data"], json!({"a": "1"}));

    // Namespaces must exist.
    let no_ns = send_json(
        a,
        "POST",
        "/api/v1/namespaces/nope/configmaps",
        "application/json",
        &configmap("x", json!({})),
    )
    .await;
    assert_eq!(no_ns.status, 404);
    assert_eq!(no_ns.json()["message"], "namespaces \"nope\" not found");

    // generateName.
    let mut gen_cm = configmap("", json!({}));
    gen_cm["metadata"] = json!({"generateName": "gen-"});
    let g = send_json(a, "POST", CM, "application/json", &gen_cm)
        .await
        .json();
    assert!(g["metadata"]["name"].as_str().unwrap().starts_with("gen-"));
    assert_eq!(g["metadata"]["name"].as_str().unwrap().len(), 9);

    // Delete returns a Success Status; then 404.
    let del = http(
        a,
        "DELETE",
        &format!("{CM}/cfg"),
        &[("Content-Type", "application/json")],
        br#"{"propagationPolicy":"Background"}"#,
    )
    .await;
    assert_eq!(del.status, 200);
    let status = del.json();
    assert_eq!(status["status"], "Success");
    assert_eq!(status["details"]["kind"], "configmaps");
    assert_eq!(status["details"]["uid"], obj["metadata"]["uid"]);
    assert_eq!(get(a, &format!("{CM}/cfg")).await.status, 404);
    c.shutdown().await;
}

#[tokio::test]
async fn server_side_apply_create_update_conflict_and_validation() {
    let c = cluster().await;
    let a = c.addr();
    let created = apply(
        a,
        &format!("{DEPLOY}/web"),
        "kubectl",
        &deployment("web", "nginx:1.24", 2),
    )
    .await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let d = created.json();
    assert_eq!(d["metadata"]["generation"], 1);
    assert_eq!(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(d["metadata"]["managedFields"][0]["manager"], "kubectl");
    assert_eq!(d["metadata"]["managedFields"][0]["operation"], "Apply");

    // Re-applying the same config is a no-op.
    assert!(c.settle(std::time::Duration::from_secs(10)).await);
    let before = get(a, &format!("{DEPLOY}/web")).await.json();
    let again = apply(
        a,
        &format!("{DEPLOY}/web"),
        "kubectl",
        &deployment("web", "nginx:1.24", 2),
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.json()["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"]
    );

    // Another manager changing the image conflicts, unless forced.
    let other = apply(
        a,
        &format!("{DEPLOY}/web"),
        "other",
        &deployment("web", "nginx:1.25", 2),
    )
    .await;
    assert_eq!(other.status, 409);
    assert_eq!(other.json()["reason"], "Conflict");
    assert!(
        other.json()["message"]
            .as_str()
            .unwrap()
            .contains("conflict"),
        "{}",
        other.json()
    );
    let forced = send_json(
        a,
        "PATCH",
        &format!("{DEPLOY}/web?fieldManager=other&force=true"),
        "application/apply-patch+yaml",
        &deployment("web", "nginx:1.25", 2),
    )
    .await;
    assert_eq!(forced.status, 200);
    assert_eq!(forced.json()["metadata"]["generation"], 2);

    // Missing fieldManager.
    let no_manager = send_json(
        a,
        "PATCH",
        &format!("{DEPLOY}/web"),
        "application/apply-patch+yaml",
        &deployment("web", "nginx:1.25", 2),
    )
    .await;
    assert_eq!(no_manager.status, 422);

    // Validation comes from the registry as a 422 with causes.
    let bad = apply(
        a,
        &format!("{DEPLOY}/bad"),
        "kubectl",
        &deployment("bad", "nginx", -1),
    )
    .await;
    assert_eq!(bad.status, 422);
    assert_eq!(bad.json()["reason"], "Invalid");
    assert_eq!(bad.json()["details"]["kind"], "Deployment");

    // Dry-run apply of a new object: no resourceVersion, nothing stored.
    let dry = send_json(
        a,
        "PATCH",
        &format!("{DEPLOY}/dry?fieldManager=kubectl&dryRun=All"),
        "application/apply-patch+yaml",
        &deployment("dry", "nginx", 1),
    )
    .await;
    assert_eq!(dry.status, 201);
    assert!(dry.json()["metadata"].get("resourceVersion").is_none());
    assert_eq!(get(a, &format!("{DEPLOY}/dry")).await.status, 404);

    // Scale subresource.
    let scale = get(a, &format!("{DEPLOY}/web/scale")).await.json();
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 2);
    let scaled = send_json(
        a,
        "PATCH",
        &format!("{DEPLOY}/web/scale"),
        "application/merge-patch+json",
        &json!({"spec": {"replicas": 4}}),
    )
    .await;
    assert_eq!(
        scaled.status,
        200,
        "{}",
        String::from_utf8_lossy(&scaled.body)
    );
    let scaled = get(a, &format!("{DEPLOY}/web")).await.json();
    assert_eq!(scaled["spec"]["replicas"], 4);
    let entries = scaled["metadata"]["managedFields"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["subresource"] == "scale"),
        "{entries:?}"
    );
    c.shutdown().await;
}

#[tokio::test]
async fn lists_selectors_paging_and_tables() {
    let c = cluster().await;
    let a = c.addr();
    for (name, tier) in [("a", "fe"), ("b", "be"), ("c", "fe")] {
        let mut cm = configmap(name, json!({}));
        cm["metadata"]["labels"] = json!({"tier": tier});
        assert_eq!(
            send_json(a, "POST", CM, "application/json", &cm)
                .await
                .status,
            201
        );
    }
    let names = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["metadata"]["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let all = get(a, &format!("{CM}?")).await.json();
    assert_eq!(all["kind"], "ConfigMapList");
    assert!(
        !all["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(names(&all), ["a", "b", "c"]);
    assert_eq!(
        names(
            &get(a, &format!("{CM}?&labelSelector=tier%3Dfe"))
                .await
                .json()
        ),
        ["a", "c"]
    );
    assert_eq!(
        names(
            &get(a, &format!("{CM}?labelSelector=tier+notin+%28fe%29"))
                .await
                .json()
        ),
        ["b"]
    );
    assert_eq!(
        names(&get(a, &format!("{CM}?labelSelector=!tier")).await.json()),
        Vec::<String>::new()
    );
    assert_eq!(
        names(
            &get(a, &format!("{CM}?fieldSelector=metadata.name%3Db"))
                .await
                .json()
        ),
        ["b"]
    );
    let bad = get(a, &format!("{CM}?fieldSelector=data.x%3D1")).await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["message"], "field label not supported: data.x");
    let empty = get(a, "/api/v1/namespaces/kube-public/configmaps")
        .await
        .json();
    assert_eq!(empty["items"], json!([]));

    let page1 = get(a, &format!("{CM}?limit=2")).await.json();
    assert_eq!(names(&page1), ["a", "b"]);
    let token = page1["metadata"]["continue"].as_str().unwrap();
    let page2 = get(a, &format!("{CM}?limit=2&continue={token}"))
        .await
        .json();
    assert_eq!(names(&page2), ["c"]);
    assert!(page2["metadata"].get("continue").is_none());

    // All namespaces.
    let all_ns = get(a, "/api/v1/configmaps").await.json();
    assert_eq!(names(&all_ns).len(), 3);

    let table = http(
        a,
        "GET",
        CM,
        &[(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )],
        b"",
    )
    .await
    .json();
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["rows"].as_array().unwrap().len(), 3);
    c.shutdown().await;
}

#[tokio::test]
async fn services_get_cluster_ips_node_ports_and_load_balancers() {
    let c = cluster().await;
    let a = c.addr();
    let svc = |name: &str, ty: &str| {
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
               "spec": {"type": ty, "selector": {"app": name}, "ports": [{"port": 80}]}})
    };
    let ci = send_json(
        a,
        "POST",
        "/api/v1/namespaces/default/services",
        "application/json",
        &svc("one", "ClusterIP"),
    )
    .await
    .json();
    assert!(
        ci["spec"]["clusterIP"]
            .as_str()
            .unwrap()
            .starts_with("10.96.")
    );
    let lb = send_json(
        a,
        "POST",
        "/api/v1/namespaces/default/services",
        "application/json",
        &svc("two", "LoadBalancer"),
    )
    .await
    .json();
    let np = lb["spec"]["ports"][0]["nodePort"].as_u64().unwrap();
    assert!((30000..=32767).contains(&np));
    assert_eq!(
        lb["status"]["loadBalancer"]["ingress"][0]["ip"],
        "172.18.255.200"
    );
    assert_ne!(lb["spec"]["clusterIP"], ci["spec"]["clusterIP"]);
    c.shutdown().await;
}

#[tokio::test]
async fn deployments_roll_out_and_garbage_is_collected() {
    let c = cluster().await;
    let a = c.addr();
    assert_eq!(
        apply(
            a,
            &format!("{DEPLOY}/web"),
            "kubectl",
            &deployment("web", "nginx:1.24", 2)
        )
        .await
        .status,
        201
    );
    assert!(c.settle(std::time::Duration::from_secs(10)).await);
    let d = get(a, &format!("{DEPLOY}/web")).await.json();
    assert_eq!(d["status"]["availableReplicas"], 2, "{d}");
    let pods = get(a, "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")
        .await
        .json();
    assert_eq!(pods["items"].as_array().unwrap().len(), 2);
    let ip = pods["items"][0]["status"]["podIP"].as_str().unwrap();
    assert!(ip.starts_with("10.244."), "{ip}");

    let del = http(
        a,
        "DELETE",
        &format!("{DEPLOY}/web"),
        &[("Content-Type", "application/json")],
        br#"{"propagationPolicy":"Background"}"#,
    )
    .await;
    assert_eq!(del.status, 200);
    assert!(c.settle(std::time::Duration::from_secs(10)).await);
    let rss = get(a, "/apis/apps/v1/namespaces/default/replicasets")
        .await
        .json();
    assert_eq!(rss["items"], json!([]));
    let pods = get(a, "/api/v1/namespaces/default/pods").await.json();
    assert_eq!(pods["items"], json!([]));

    // Orphan keeps the ReplicaSet, without the ownerReference.
    assert_eq!(
        apply(
            a,
            &format!("{DEPLOY}/keep"),
            "kubectl",
            &deployment("keep", "nginx", 1)
        )
        .await
        .status,
        201
    );
    assert!(c.settle(std::time::Duration::from_secs(10)).await);
    let del = http(
        a,
        "DELETE",
        &format!("{DEPLOY}/keep"),
        &[("Content-Type", "application/json")],
        br#"{"propagationPolicy":"Orphan"}"#,
    )
    .await;
    assert_eq!(del.status, 200);
    assert!(c.settle(std::time::Duration::from_secs(10)).await);
    let rss = get(a, "/apis/apps/v1/namespaces/default/replicasets")
        .await
        .json();
    assert_eq!(rss["items"].as_array().unwrap().len(), 1);
    assert!(rss["items"][0]["metadata"].get("ownerReferences").is_none());
    c.shutdown().await;
}

#[tokio::test]
async fn faults_fail_requests_deterministically_and_counts_split_verbs() {
    let c = cluster().await;
    let a = c.addr();
    c.faults().set(kubesim::FaultRule {
        verbs: vec![kubesim::Verb::Get],
        error_rate: 1.0,
        status: 429,
        retry_after: Some(3),
        ..Default::default()
    });
    let r = get(a, &format!("{CM}/x")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));
    assert_eq!(r.json()["reason"], "TooManyRequests");
    c.faults().clear();
    assert_eq!(get(a, &format!("{CM}/x")).await.status, 404);
    let counts = c.request_count();
    assert_eq!(counts.get, 2);
    assert_eq!(counts.writes(), 0);
    c.shutdown().await;
}

#[tokio::test]
async fn foreground_deletion_waits_for_dependents() {
    let c = cluster().await;
    let a = c.addr();
    assert_eq!(
        apply(
            a,
            &format!("{DEPLOY}/fg"),
            "kubectl",
            &deployment("fg", "nginx", 2)
        )
        .await
        .status,
        201
    );
    assert!(c.settle(std::time::Duration::from_secs(10)).await);
    let del = http(
        a,
        "DELETE",
        &format!("{DEPLOY}/fg"),
        &[("Content-Type", "application/json")],
        br#"{"propagationPolicy":"Foreground"}"#,
    )
    .await;
    assert_eq!(del.status, 200);
    let pending = del.json();
    assert_eq!(pending["kind"], "Deployment");
    assert!(pending["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(
        pending["metadata"]["finalizers"],
        json!(["foregroundDeletion"])
    );
    assert!(c.settle(std::time::Duration::from_secs(10)).await);
    assert_eq!(get(a, &format!("{DEPLOY}/fg")).await.status, 404);
    assert_eq!(
        get(a, "/api/v1/namespaces/default/pods").await.json()["items"],
        json!([])
    );
    c.shutdown().await;
}

#[tokio::test]
async fn faults_drop_watches_and_refuse_connections() {
    let c = cluster().await;
    let a = c.addr();
    c.faults().set(kubesim::FaultRule {
        drop_watches_after: Some(std::time::Duration::from_millis(100)),
        ..Default::default()
    });
    let mut w = crate::support::Watch::open(a, &format!("{CM}?watch=true")).await;
    assert!(
        w.next_change().await.is_none(),
        "the stream ends without a timeoutSeconds"
    );
    c.faults().set(kubesim::FaultRule {
        refuse_connections: true,
        ..Default::default()
    });
    let mut s = tokio::net::TcpStream::connect(a).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = s
        .write_all(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let n = s.read_to_end(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "connection closed without a response");
    c.faults().clear();
    assert_eq!(get(a, "/version").await.status, 200);
    c.shutdown().await;
}
