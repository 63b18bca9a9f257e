//! The knowledge store against real journals: SQLite always, PostgreSQL when
//! `IOTCANE_TEST_POSTGRES_URL` is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helpers;

use helpers::{backends, device_json, edge_json, export_lines, now_ms, open, resource};
use iotcane_model::vocab::{ic, schema};
use iotcane_model::{Kind, ResourceId, Tenant};
use iotcane_store::{
    Change, ChangeSource, Cmp, Filter, Find, Found, KnowledgeStore, Op, QueryOutput, StoreError,
};
use oxigraph::model::{Literal, Term};

fn tenant(name: &str) -> Tenant {
    name.parse().unwrap()
}

fn id(s: &str) -> ResourceId {
    s.parse().unwrap()
}

async fn put(store: &KnowledgeStore, t: &Tenant, value: serde_json::Value) -> i64 {
    store
        .write_one(
            Change::put(t.clone(), resource(value)),
            "tester",
            ChangeSource::Cli,
        )
        .await
        .unwrap()
        .version
}

#[tokio::test]
async fn versions_history_and_optimistic_concurrency() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), &backend).await;
        let t = tenant("acme");
        assert_eq!(put(&store, &t, device_json("hr-1", "first")).await, 1);
        let between = now_ms();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;

        // "Only if still version 1" succeeds once, then is stale.
        let conditional = |name: &str| Change::Put {
            tenant: t.clone(),
            resource: Box::new(resource(device_json("hr-1", name))),
            expected_version: Some(1),
            create_only: false,
        };
        let written = store
            .write_one(conditional("second"), "alice", ChangeSource::Http)
            .await
            .unwrap();
        assert_eq!((written.version, written.op), (2, Op::Update));
        let stale = store
            .write_one(conditional("third"), "bob", ChangeSource::Http)
            .await;
        assert!(
            matches!(
                stale,
                Err(StoreError::VersionMismatch {
                    expected: 1,
                    actual: 2,
                    ..
                })
            ),
            "{}: {stale:?}",
            backend.name
        );

        let stored = store.get(&t, &id("hr-1")).unwrap().unwrap();
        assert_eq!(stored.resource.name, "second");
        assert_eq!(stored.meta.version, 2);
        assert_eq!(stored.meta.actor, "alice");

        // What it looked like before the update, and who changed it.
        let (old, old_resource) = store
            .as_of(&t, &id("hr-1"), between)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((old.version, old_resource.name.as_str()), (1, "first"));
        let history = store.history(&t, &id("hr-1")).await.unwrap();
        let summary: Vec<_> = history
            .iter()
            .map(|e| (e.version, e.op, e.actor.as_str()))
            .collect();
        assert_eq!(
            summary,
            [(1, Op::Create, "tester"), (2, Op::Update, "alice")]
        );

        // Delete, then re-create: the version count goes on.
        let deleted = store
            .write_one(
                Change::Delete {
                    tenant: t.clone(),
                    id: id("hr-1"),
                    expected_version: Some(2),
                },
                "alice",
                ChangeSource::Http,
            )
            .await
            .unwrap();
        assert_eq!((deleted.version, deleted.op), (3, Op::Delete));
        let history = store.history(&t, &id("hr-1")).await.unwrap();
        assert_eq!(history[2].kind, "device", "a delete names what it removed");
        assert_eq!(history[2].body, None);
        assert!(store.get(&t, &id("hr-1")).unwrap().is_none());
        assert!(
            store
                .as_of(&t, &id("hr-1"), now_ms())
                .await
                .unwrap()
                .is_none()
        );
        let again = store
            .write_one(
                Change::put(t.clone(), resource(device_json("hr-1", "back"))),
                "x",
                ChangeSource::Mqtt,
            )
            .await
            .unwrap();
        assert_eq!((again.version, again.op), (4, Op::Create));
        // Re-created: a new creation time, not the first one's.
        assert!(store.get(&t, &id("hr-1")).unwrap().unwrap().meta.created_ms >= between);

        // Deleting what does not exist, and creating what does, are refused.
        let missing = store
            .write_one(
                Change::Delete {
                    tenant: t.clone(),
                    id: id("nope"),
                    expected_version: None,
                },
                "x",
                ChangeSource::Cli,
            )
            .await;
        assert!(
            matches!(missing, Err(StoreError::NotFound { .. })),
            "{missing:?}"
        );
        let duplicate = store
            .write_one(
                Change::Put {
                    tenant: t.clone(),
                    resource: Box::new(resource(device_json("hr-1", "dup"))),
                    expected_version: None,
                    create_only: true,
                },
                "x",
                ChangeSource::Cli,
            )
            .await;
        assert!(
            matches!(duplicate, Err(StoreError::AlreadyExists { version: 4, .. })),
            "{duplicate:?}"
        );
        assert_eq!(
            store.get(&t, &id("hr-1")).unwrap().unwrap().resource.name,
            "back"
        );
    }
}

#[tokio::test]
async fn a_refused_change_leaves_the_rest_of_its_batch_and_the_store_intact() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), &backend).await;
        let t = tenant("acme");
        put(&store, &t, device_json("a", "a1")).await;
        let before = export_lines(&store);
        let results = store
            .write(
                vec![
                    Change::put(t.clone(), resource(device_json("b", "b1"))),
                    Change::Put {
                        tenant: t.clone(),
                        resource: Box::new(resource(device_json("a", "a2"))),
                        expected_version: Some(7),
                        create_only: false,
                    },
                    Change::put(t.clone(), resource(device_json("c", "c1"))),
                ],
                "x",
                ChangeSource::Cli,
            )
            .await
            .unwrap();
        assert!(
            results[0].is_ok() && results[1].is_err() && results[2].is_ok(),
            "{results:?}"
        );
        assert_eq!(
            store.get(&t, &id("a")).unwrap().unwrap().resource.name,
            "a1"
        );
        let after = export_lines(&store);
        let unchanged: Vec<_> = before.iter().filter(|l| after.contains(l)).collect();
        assert_eq!(unchanged.len(), before.len(), "a's quads must be untouched");
        assert_eq!(store.count(&t, None).unwrap(), 3);
    }
}

#[tokio::test]
async fn one_batch_may_change_a_resource_several_times() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), &backend).await;
        let t = tenant("acme");
        let results = store
            .write(
                vec![
                    Change::put(t.clone(), resource(device_json("a", "one"))),
                    Change::put(t.clone(), resource(device_json("a", "two"))),
                    Change::Delete {
                        tenant: t.clone(),
                        id: id("a"),
                        expected_version: Some(2),
                    },
                    Change::put(t.clone(), resource(device_json("a", "three"))),
                ],
                "x",
                ChangeSource::Cli,
            )
            .await
            .unwrap();
        let ops: Vec<_> = results
            .into_iter()
            .map(|r| r.map(|w| (w.version, w.op)).unwrap())
            .collect();
        assert_eq!(
            ops,
            [
                (1, Op::Create),
                (2, Op::Update),
                (3, Op::Delete),
                (4, Op::Create)
            ],
            "{}",
            backend.name
        );
        let stored = store.get(&t, &id("a")).unwrap().unwrap();
        assert_eq!(
            (stored.resource.name.as_str(), stored.meta.version),
            ("three", 4)
        );
        // The journal's own view agrees after a restart.
        store.close().await;
        let reopened = open(dir.path(), &backend).await;
        assert_eq!(reopened.get(&t, &id("a")).unwrap().unwrap().meta.version, 4);
        let next = reopened
            .write_one(
                Change::Delete {
                    tenant: t.clone(),
                    id: id("a"),
                    expected_version: Some(4),
                },
                "x",
                ChangeSource::Cli,
            )
            .await
            .unwrap();
        assert_eq!(next.version, 5);
    }
}

#[tokio::test]
async fn tenants_are_isolated_in_reads_and_sparql() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), &backend).await;
        let (a, b) = (tenant("hospital-a"), tenant("hospital-b"));
        put(&store, &a, device_json("hr-1", "A's sensor")).await;
        put(&store, &b, device_json("hr-1", "B's sensor")).await;
        put(&store, &b, device_json("hr-2", "B's other sensor")).await;

        assert_eq!(
            store.get(&a, &id("hr-1")).unwrap().unwrap().resource.name,
            "A's sensor"
        );
        assert!(store.get(&a, &id("hr-2")).unwrap().is_none());
        assert_eq!(store.list(&a, None, None, 100).unwrap().len(), 1);

        let names = |out: QueryOutput| -> Vec<String> {
            let QueryOutput::Solutions { rows, .. } = out else {
                panic!("solutions expected")
            };
            let mut names: Vec<String> = rows
                .into_iter()
                .filter_map(|r| match &r[0] {
                    Some(Term::Literal(l)) => Some(l.value().to_owned()),
                    _ => None,
                })
                .collect();
            names.sort();
            names
        };
        let q = "SELECT ?n WHERE { ?s <https://schema.org/name> ?n }";
        assert_eq!(names(store.sparql(&a, q).await.unwrap()), ["A's sensor"]);
        let q = "SELECT ?n WHERE { GRAPH ?g { ?s <https://schema.org/name> ?n } }";
        assert_eq!(names(store.sparql(&a, q).await.unwrap()), ["A's sensor"]);
        // Naming another tenant's graph does not reach it.
        let other = b.graph_of(&id("hr-2"));
        let other = other.as_str();
        let q = format!("SELECT ?n FROM <{other}> WHERE {{ ?s <https://schema.org/name> ?n }}");
        assert_eq!(
            names(store.sparql(&a, &q).await.unwrap()),
            Vec::<String>::new()
        );
        let q = format!(
            "SELECT ?n FROM NAMED <{other}> WHERE {{ GRAPH ?g {{ ?s <https://schema.org/name> ?n }} }}"
        );
        assert_eq!(
            names(store.sparql(&a, &q).await.unwrap()),
            Vec::<String>::new()
        );
        // The whole graph (what an export sees) holds every tenant's resources.
        assert_eq!(
            export_lines(&store)
                .iter()
                .filter(|l| l.contains("<https://schema.org/name>"))
                .count(),
            3
        );
    }
}

#[tokio::test]
async fn sparql_forms_limits_and_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backends().await.remove(0);
    let mut config = helpers::config(dir.path(), &backend);
    config.query_result_limit = 15;
    config.query_timeout = std::time::Duration::from_millis(50);
    let store = KnowledgeStore::open(config).await.unwrap();
    let t = tenant("acme");
    for i in 0..20 {
        put(&store, &t, edge_json(&format!("gw-{i:02}"), 2 + i % 8)).await;
    }
    let ask = store
        .sparql(
            &t,
            "ASK { ?s a <https://w3id.org/iotcane/ontology#EdgeNode> }",
        )
        .await
        .unwrap();
    assert_eq!(ask, QueryOutput::Boolean(true));
    let construct = store
        .sparql(&t, "CONSTRUCT { ?s <urn:x:cores> ?c } WHERE { ?s <https://w3id.org/iotcane/ontology#cpuCores> ?c } LIMIT 3")
        .await
        .unwrap();
    assert!(
        matches!(construct, QueryOutput::Graph(ref g) if g.len() == 3),
        "{construct:?}"
    );
    let describe = store
        .sparql(&t, "DESCRIBE <https://w3id.org/iotcane/id/gw-01>")
        .await
        .unwrap();
    assert!(matches!(describe, QueryOutput::Graph(ref g) if !g.is_empty()));

    let too_many = store.sparql(&t, "SELECT ?s WHERE { ?s a ?c }").await;
    assert!(
        matches!(too_many, Err(StoreError::ResultLimit(15))),
        "{too_many:?}"
    );
    let syntax = store.sparql(&t, "SELEKT * WHERE {").await;
    assert!(
        matches!(syntax, Err(StoreError::QuerySyntax(_))),
        "{syntax:?}"
    );
    let service = store
        .sparql(
            &t,
            "SELECT * WHERE { SERVICE <http://example.com/sparql> { ?s ?p ?o } }",
        )
        .await;
    assert!(
        matches!(service, Err(StoreError::ServiceRefused)),
        "{service:?}"
    );
    let silent = store
        .sparql(
            &t,
            "SELECT * WHERE { SERVICE SILENT <http://example.com/sparql> { ?s ?p ?o } }",
        )
        .await;
    assert!(
        matches!(silent, Err(StoreError::ServiceRefused)),
        "{silent:?}"
    );
    // A literal that merely mentions the word is fine.
    let harmless = store
        .sparql(&t, "SELECT * WHERE { ?s ?p \"(service <x>)\" } LIMIT 1")
        .await;
    assert!(harmless.is_ok(), "{harmless:?}");
    let slow = store
        .sparql(
            &t,
            "SELECT (COUNT(*) AS ?n) WHERE { ?a ?b ?c . ?d ?e ?f . ?g ?h ?i . ?j ?k ?l }",
        )
        .await;
    assert!(
        matches!(slow, Err(StoreError::QueryTimeout(50))),
        "{slow:?}"
    );
}

#[tokio::test]
async fn typed_queries_filter_by_kind_and_property_paths() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backends().await.remove(0);
    let store = open(dir.path(), &backend).await;
    let t = tenant("acme");
    for (i, cores) in [1, 2, 4, 8].into_iter().enumerate() {
        put(&store, &t, edge_json(&format!("gw-{i}"), cores)).await;
    }
    let mut offline = device_json("hr-off", "offline one");
    offline["live"]["status"] = "offline".into();
    put(&store, &t, offline).await;
    put(&store, &t, device_json("hr-on", "online one")).await;
    put(&store, &tenant("other"), edge_json("gw-9", 64)).await;

    let find = |kind, filters| Find {
        filters,
        limit: 100,
        ..Find::new(t.clone(), kind)
    };
    let ids = |found: Vec<Found>| found.into_iter().map(|f| f.id).collect::<Vec<_>>();
    let big = store
        .find(find(
            Some(Kind::EdgeNode),
            vec![Filter::cmp(
                vec![ic::CPU_CORES.into_owned()],
                Cmp::Ge,
                Literal::from(4),
            )],
        ))
        .await
        .unwrap();
    assert_eq!(ids(big), [id("gw-2"), id("gw-3")]);
    let online = store
        .find(find(
            Some(Kind::Device),
            vec![Filter::cmp(
                vec![ic::LIVE.into_owned(), ic::STATUS.into_owned()],
                Cmp::Eq,
                Literal::new_simple_literal("online"),
            )],
        ))
        .await
        .unwrap();
    assert_eq!(ids(online), [id("hr-on")]);
    // A user value with SPARQL syntax in it is only ever a literal.
    let hostile = store
        .find(find(
            None,
            vec![Filter::cmp(
                vec![schema::NAME.into_owned()],
                Cmp::StartsWith,
                Literal::new_simple_literal("\") } } SELECT * WHERE { ?s ?p ?o } #"),
            )],
        ))
        .await
        .unwrap();
    assert!(hostile.is_empty());
    let prefix = store
        .find(find(
            None,
            vec![Filter::cmp(
                vec![schema::NAME.into_owned()],
                Cmp::StartsWith,
                Literal::new_simple_literal("gateway gw-"),
            )],
        ))
        .await
        .unwrap();
    assert_eq!(prefix.len(), 4);
}

#[tokio::test]
async fn restart_rebuilds_exactly_the_graph_from_snapshot_and_tail() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let t = tenant("acme");
        let before = {
            let store = open(dir.path(), &backend).await;
            let batch: Vec<Change> = (0..300)
                .map(|i| Change::put(t.clone(), resource(device_json(&format!("d-{i}"), "v1"))))
                .collect();
            store
                .write(batch, "import", ChangeSource::Cli)
                .await
                .unwrap();
            let snapshot = store.snapshot().await.unwrap().expect("a snapshot");
            assert_eq!(snapshot.seq, store.applied_seq());
            // The tail: updates, deletes and new resources after the snapshot.
            for i in 0..40 {
                put(&store, &t, device_json(&format!("d-{i}"), "v2")).await;
            }
            for i in 40..60 {
                store
                    .write_one(
                        Change::Delete {
                            tenant: t.clone(),
                            id: id(&format!("d-{i}")),
                            expected_version: None,
                        },
                        "x",
                        ChangeSource::Cli,
                    )
                    .await
                    .unwrap();
            }
            put(&store, &tenant("beta"), edge_json("gw", 4)).await;
            let lines = export_lines(&store);
            store.close().await;
            lines
        };
        let reopened = open(dir.path(), &backend).await;
        assert_eq!(
            reopened.applied_seq(),
            reopened.journal_head().await.unwrap()
        );
        assert_eq!(
            export_lines(&reopened),
            before,
            "{}: rebuilt graph differs",
            backend.name
        );
        assert_eq!(reopened.count(&t, None).unwrap(), 280);
        assert_eq!(
            reopened.get(&t, &id("d-5")).unwrap().unwrap().meta.version,
            2
        );

        // Without any snapshot, the journal alone gives the same graph.
        std::fs::remove_dir_all(dir.path().join("snapshots")).unwrap();
        let replayed = open(dir.path(), &backend).await;
        assert_eq!(export_lines(&replayed), before);
    }
}

#[tokio::test]
async fn a_failed_snapshot_is_owed_and_taken_later() {
    let dir = tempfile::tempdir().unwrap();
    let backend = backends().await.remove(0);
    let store = open(dir.path(), &backend).await;
    put(&store, &tenant("acme"), device_json("a", "a")).await;
    // A file where the snapshot folder belongs makes the write fail.
    std::fs::write(dir.path().join("snapshots"), "in the way").unwrap();
    assert!(matches!(
        store.snapshot().await,
        Err(StoreError::Snapshot(_))
    ));
    std::fs::remove_file(dir.path().join("snapshots")).unwrap();
    let file = store.snapshot().await.unwrap().expect("the owed snapshot");
    assert_eq!(file.seq, store.applied_seq());
    assert!(
        store.snapshot().await.unwrap().is_none(),
        "nothing new since"
    );
}

#[tokio::test]
async fn two_stores_on_one_journal_converge() {
    for backend in backends().await {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // Both replicas share the journal: SQLite through the same file.
        let backend = shared(&backend, dir_a.path());
        let a = open(dir_a.path(), &backend).await;
        let b = open(dir_b.path(), &backend).await;
        let t = tenant("acme");
        put(&a, &t, device_json("x", "from a")).await;
        put(&b, &t, device_json("y", "from b")).await;
        // b's write caught b up with a's row before applying its own.
        assert_eq!(
            b.get(&t, &id("x")).unwrap().unwrap().resource.name,
            "from a"
        );
        // Interleaved writers on one resource: versions stay consistent.
        let (ra, rb) = tokio::join!(
            a.write_one(
                Change::put(t.clone(), resource(device_json("x", "a again"))),
                "a",
                ChangeSource::Http
            ),
            b.write_one(
                Change::put(t.clone(), resource(device_json("x", "b again"))),
                "b",
                ChangeSource::Http
            ),
        );
        let mut versions = [ra.unwrap().version, rb.unwrap().version];
        versions.sort();
        assert_eq!(versions, [2, 3]);
        a.catch_up().await.unwrap();
        b.catch_up().await.unwrap();
        assert_eq!(
            export_lines(&a),
            export_lines(&b),
            "{}: replicas diverged",
            backend.name
        );
        assert_eq!(a.applied_seq(), b.applied_seq());

        // The background tailer converges without explicit catch-up.
        let shutdown = tokio_util::sync::CancellationToken::new();
        let tailer = tokio::spawn({
            let b = b.clone();
            let shutdown = shutdown.clone();
            async move { b.run_background(shutdown).await }
        });
        put(&a, &t, device_json("z", "late")).await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while b.get(&t, &id("z")).unwrap().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "tailer did not apply the row"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        tailer.await.unwrap();
        assert_eq!(export_lines(&a), export_lines(&b));
    }
}

#[tokio::test]
async fn concurrent_writes_share_commits_and_each_gets_its_own_answer() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), &backend).await;
        let t = tenant("acme");
        put(&store, &t, device_json("contended", "v1")).await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..60 {
            let store = store.clone();
            let t = t.clone();
            tasks.spawn(async move {
                // Half create their own device; half race to update one device at version 1.
                let (json, expected) = if i % 2 == 0 {
                    (device_json(&format!("own-{i:02}"), "mine"), None)
                } else {
                    (device_json("contended", &format!("racer {i}")), Some(1))
                };
                let change = Change::Put {
                    tenant: t,
                    resource: Box::new(resource(json)),
                    expected_version: expected,
                    create_only: false,
                };
                (
                    i,
                    store.write_one(change, "racer", ChangeSource::Http).await,
                )
            });
        }
        let mut winners = 0;
        let mut seqs = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (i, result) = joined.unwrap();
            match result {
                Ok(written) => {
                    seqs.push(written.seq);
                    if i % 2 == 1 {
                        winners += 1;
                        assert_eq!(written.version, 2);
                    } else {
                        assert_eq!(written.id, id(&format!("own-{i:02}")));
                    }
                }
                Err(StoreError::VersionMismatch { actual, .. }) => {
                    assert_eq!(i % 2, 1, "only racers may lose");
                    assert_eq!(actual, 2);
                }
                Err(e) => panic!("{}: write {i}: {e}", backend.name),
            }
        }
        assert_eq!(winners, 1, "{}: exactly one racer wins", backend.name);
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (2..=32).collect::<Vec<i64>>(),
            "{}: positions are dense",
            backend.name
        );
        assert_eq!(store.applied_seq(), 32);
        assert_eq!(store.count(&t, Some(Kind::Device)).unwrap(), 31);
        store.close().await;
    }
}

#[tokio::test]
async fn an_all_or_nothing_batch_with_one_refusal_writes_nothing() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), &backend).await;
        let t = tenant("acme");
        put(&store, &t, device_json("a", "a v1")).await;
        let before = export_lines(&store);
        let head = store.journal_head().await.unwrap();
        let change = |json, expected| Change::Put {
            tenant: t.clone(),
            resource: Box::new(resource(json)),
            expected_version: expected,
            create_only: false,
        };
        let results = store
            .write_all_or_nothing(
                vec![
                    change(device_json("b", "new"), None),
                    change(device_json("a", "stale"), Some(7)),
                ],
                "admin",
                ChangeSource::Http,
            )
            .await
            .unwrap();
        assert!(
            matches!(&results[0], Err(StoreError::Aborted(id)) if id == &self::id("b")),
            "{results:?}"
        );
        assert!(
            matches!(
                &results[1],
                Err(StoreError::VersionMismatch { actual: 1, .. })
            ),
            "{results:?}"
        );
        assert_eq!(
            store.journal_head().await.unwrap(),
            head,
            "{}",
            backend.name
        );
        assert_eq!(export_lines(&store), before);
        store.close().await;
    }
}

fn live(status: &str, load: f64) -> Box<iotcane_model::LiveContext> {
    let mut live: iotcane_model::LiveContext = serde_json::from_value(serde_json::json!({
        "status": status,
        "loadPct": load,
        "location": {"lat": 45.5, "lon": 9.2},
        "properties": {"mode": "eco", "level": 3},
    }))
    .unwrap();
    live.normalize();
    Box::new(live)
}

#[tokio::test]
async fn context_reports_replace_the_live_part_keep_the_version_and_are_pruned() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let t = tenant("acme");
        let mut config = helpers::config(dir.path(), &backend);
        config.context_history = 3;
        let store = KnowledgeStore::open(config.clone()).await.unwrap();
        put(&store, &t, device_json("d-1", "v1")).await;
        put(&store, &t, edge_json("gw", 4)).await;
        let link = serde_json::json!({
            "id": "l-1", "kind": "networkLink", "name": "Link",
            "from": "site:site-a", "to": "region:aws/eu-west-1", "latencyMs": 20.0, "bandwidthMbps": 100.0,
        });
        put(&store, &t, link).await;
        for i in 0..10 {
            let results = store
                .write(
                    vec![
                        Change::Context {
                            tenant: t.clone(),
                            id: id("d-1"),
                            live: live("online", f64::from(i)),
                        },
                        Change::Context {
                            tenant: t.clone(),
                            id: id("gw"),
                            live: live("online", 50.0),
                        },
                    ],
                    "gateway",
                    ChangeSource::Mqtt,
                )
                .await
                .unwrap();
            for r in results {
                let written = r.unwrap();
                assert_eq!(written.op, Op::Context);
                assert_eq!(written.version, 1, "a report is not a new version");
            }
        }
        // Refused: an unknown resource, and a kind without live context; the rest stands.
        let refused = store
            .write(
                vec![
                    Change::Context {
                        tenant: t.clone(),
                        id: id("ghost"),
                        live: live("offline", 1.0),
                    },
                    Change::Context {
                        tenant: t.clone(),
                        id: id("l-1"),
                        live: live("offline", 1.0),
                    },
                    Change::Context {
                        tenant: tenant("other"),
                        id: id("d-1"),
                        live: live("offline", 1.0),
                    },
                ],
                "gateway",
                ChangeSource::Mqtt,
            )
            .await
            .unwrap();
        assert!(matches!(refused[0], Err(StoreError::NotFound { .. })));
        assert!(matches!(refused[1], Err(StoreError::NoLiveContext { .. })));
        assert!(
            matches!(refused[2], Err(StoreError::NotFound { .. })),
            "tenants are apart"
        );

        let stored = store.get(&t, &id("d-1")).unwrap().unwrap();
        let now = stored.resource.to_json();
        assert_eq!(now["live"]["loadPct"], 9.0, "{now}");
        assert_eq!(now["live"]["properties"]["mode"], "eco");
        assert_eq!(now["name"], "v1", "the description is untouched");
        assert_eq!(stored.meta.version, 1);
        assert_eq!(
            store.history(&t, &id("d-1")).await.unwrap().len(),
            1,
            "history lists versions only"
        );
        assert_eq!(
            store
                .context_history(&t, &id("d-1"), 100)
                .await
                .unwrap()
                .len(),
            10
        );

        // A new description without a live context keeps the reported one.
        let mut without_live = device_json("d-1", "v2");
        without_live.as_object_mut().unwrap().remove("live");
        assert_eq!(put(&store, &t, without_live).await, 2);
        let now = store
            .get(&t, &id("d-1"))
            .unwrap()
            .unwrap()
            .resource
            .to_json();
        assert_eq!(now["name"], "v2");
        assert_eq!(
            now["live"]["loadPct"], 9.0,
            "the live context survives: {now}"
        );

        // Pruning keeps the newest reports of each device, the newest first.
        let deleted = store.prune_context().await.unwrap();
        assert_eq!(deleted, 14);
        let kept = store.context_history(&t, &id("d-1"), 100).await.unwrap();
        let loads: Vec<String> = kept.iter().map(|e| e.body.clone().unwrap()).collect();
        assert_eq!(kept.len(), 3, "{loads:?}");
        assert!(loads[0].contains("\"loadPct\":9.0"), "{loads:?}");

        // A restart (from the snapshot, and from the journal alone) ends on the same graph.
        let before = export_lines(&store);
        store.snapshot().await.unwrap();
        store.close().await;
        let reopened = KnowledgeStore::open(config.clone()).await.unwrap();
        assert_eq!(
            export_lines(&reopened),
            before,
            "{}: from the snapshot",
            backend.name
        );
        reopened.close().await;
        std::fs::remove_dir_all(dir.path().join("snapshots")).unwrap();
        let replayed = KnowledgeStore::open(config).await.unwrap();
        assert_eq!(
            export_lines(&replayed),
            before,
            "{}: from the journal",
            backend.name
        );
        replayed.close().await;
    }
}

#[tokio::test]
async fn one_replica_at_a_time_holds_a_subscription_lease() {
    for backend in backends().await {
        let dir = tempfile::tempdir().unwrap();
        let a = open(dir.path(), &backend).await;
        let record = iotcane_store::RecommendationRecord {
            tenant: "acme".into(),
            id: "rec-1".into(),
            created_ms: 1,
            actor: "test".into(),
            context: "{}".into(),
            result: "{}".into(),
            supersedes: None,
            subscribed: true,
            margin: None,
            feedback: None,
            case_id: None,
        };
        a.insert_recommendation(&record).await.unwrap();
        let lease = 30_000;
        let claim = |owner: &'static str, now: i64| {
            let a = a.clone();
            async move {
                a.claim_subscription("acme", "rec-1", owner, now, lease)
                    .await
                    .unwrap()
            }
        };
        assert!(
            claim("replica-1", 1_000).await,
            "{}: a free lease",
            backend.name
        );
        assert!(!claim("replica-2", 2_000).await, "{}: held", backend.name);
        assert!(
            claim("replica-1", 20_000).await,
            "{}: renewed",
            backend.name
        );
        assert!(
            !claim("replica-2", 40_000).await,
            "{}: renewal counts",
            backend.name
        );
        assert!(
            claim("replica-2", 60_000).await,
            "{}: ran out",
            backend.name
        );
        assert!(
            !claim("replica-1", 61_000).await,
            "{}: taken over",
            backend.name
        );
        assert!(
            !a.claim_subscription("acme", "rec-unknown", "replica-1", 1, lease)
                .await
                .unwrap()
        );
        a.set_subscription("acme", "rec-1", false, None)
            .await
            .unwrap();
        assert!(
            !claim("replica-2", 62_000).await,
            "{}: not subscribed",
            backend.name
        );
        assert_eq!(
            a.subscribed_recommendations("acme").await.unwrap().len(),
            0,
            "{}",
            backend.name
        );
        a.close().await;
    }
}

async fn delete(store: &KnowledgeStore, t: &Tenant, name: &str) {
    store
        .write_one(
            Change::Delete {
                tenant: t.clone(),
                id: id(name),
                expected_version: None,
            },
            "tester",
            ChangeSource::Cli,
        )
        .await
        .unwrap();
}

async fn report(store: &KnowledgeStore, t: &Tenant, name: &str, load: f64) {
    store
        .write_one(
            Change::Context {
                tenant: t.clone(),
                id: id(name),
                live: live("online", load),
            },
            "gateway",
            ChangeSource::Mqtt,
        )
        .await
        .unwrap();
}

/// Waits until the clock has moved past `ms`, so rows written next are later than it.
async fn after_ms(ms: i64) {
    while now_ms() <= ms {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn compaction_removes_replaced_history_and_a_rebuild_gives_the_same_graph() {
    for backend in backends().await {
        let (dir_a, dir_b, dir_c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        // Three graphs on one journal: SQLite through the same file.
        let backend = shared(&backend, dir_a.path());
        let t = tenant("acme");
        let a = open(dir_a.path(), &backend).await;
        for i in 0..20 {
            put(&a, &t, device_json(&format!("d-{i}"), "v1")).await;
        }
        // Edge nodes are written without a live context, so they keep the reported one.
        for i in 0..3 {
            put(&a, &t, edge_json(&format!("gw-{i}"), 4)).await;
        }
        // A snapshot, and a replica, from before the deletions below.
        a.snapshot().await.unwrap().expect("a snapshot");
        let lagging = open(dir_c.path(), &backend).await;
        for round in 2..=6 {
            for i in 0..20 {
                put(&a, &t, device_json(&format!("d-{i}"), &format!("v{round}"))).await;
            }
            for i in 0..3 {
                report(&a, &t, &format!("gw-{i}"), f64::from(round)).await;
                put(&a, &t, edge_json(&format!("gw-{i}"), 4 + round)).await;
            }
        }
        report(&a, &t, "gw-2", 99.0).await;
        for i in 10..15 {
            delete(&a, &t, &format!("d-{i}")).await;
        }
        delete(&a, &t, "gw-2").await;
        put(&a, &t, device_json("d-12", "re-created")).await;
        let created_d3 = a.get(&t, &id("d-3")).unwrap().unwrap().meta.created_ms;

        let before_ms = now_ms();
        after_ms(before_ms).await;
        // After the cutoff: kept whatever happens to it.
        put(&a, &t, device_json("d-1", "v7")).await;
        delete(&a, &t, "d-15").await;
        put(&a, &t, device_json("d-30", "new")).await;
        let expected = export_lines(&a);

        let compacted = a.compact(before_ms).await.unwrap();
        // 20 devices × 5 replaced versions, 3 edge nodes × 5 versions and 5 reports, the
        // deleted devices' last versions, gw-2's last version, report and deletion, the
        // deletions, d-12's versions before its deletion.
        assert!(
            compacted.rows_removed >= 100 + 15,
            "{}: {compacted:?}",
            backend.name
        );
        assert_eq!(export_lines(&a), expected, "compaction changed the graph");

        // History keeps the version in effect at the cutoff, and everything after.
        let versions = |id_: &'static str| {
            let a = a.clone();
            let t = t.clone();
            async move {
                a.history(&t, &id(id_))
                    .await
                    .unwrap()
                    .iter()
                    .map(|e| (e.version, e.op))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(versions("d-3").await, [(6, Op::Update)]);
        assert_eq!(versions("d-1").await, [(6, Op::Update), (7, Op::Update)]);
        assert_eq!(versions("d-10").await, []);
        assert_eq!(versions("d-12").await, [(8, Op::Create)]);
        assert_eq!(
            versions("d-15").await,
            [(6, Op::Update), (7, Op::Delete)],
            "a deletion after the cutoff stays"
        );
        assert_eq!(versions("gw-2").await, []);
        assert!(matches!(
            a.as_of(&t, &id("d-3"), before_ms - 1).await,
            Err(StoreError::HistoryCompacted { .. })
        ));
        assert_eq!(
            a.as_of(&t, &id("d-3"), before_ms)
                .await
                .unwrap()
                .unwrap()
                .0
                .version,
            6
        );
        assert_eq!(
            a.compact(before_ms).await.unwrap().rows_removed,
            0,
            "a second run finds nothing"
        );

        // A new replica rebuilds the same graph from the compacted journal alone: the
        // creation times, versions and live contexts the removed rows gave are there.
        let fresh = open(dir_b.path(), &backend).await;
        assert_eq!(
            export_lines(&fresh),
            expected,
            "{}: rebuild differs",
            backend.name
        );
        assert_eq!(
            fresh.get(&t, &id("d-3")).unwrap().unwrap().meta.created_ms,
            created_d3
        );
        fresh.close().await;

        // A snapshot from before the removed deletions would bring d-10 back: a restart
        // leaves it and replays the journal.
        a.close().await;
        let restarted = open(dir_a.path(), &backend).await;
        assert!(restarted.get(&t, &id("d-10")).unwrap().is_none());
        assert_eq!(export_lines(&restarted), expected);

        // A replica that had not applied the removed deletions cannot catch up; it says
        // so, and only a rebuild helps.
        assert!(lagging.get(&t, &id("d-10")).unwrap().is_some());
        assert!(matches!(
            lagging.catch_up().await,
            Err(StoreError::BehindCompaction { .. })
        ));
        assert!(lagging.is_stale());
        lagging.close().await;
        let rebuilt = open(dir_c.path(), &backend).await;
        assert!(!rebuilt.is_stale());
        assert_eq!(export_lines(&rebuilt), expected);

        // Compacting everything, the deletion after the first cutoff too, still rebuilds
        // the same graph.
        after_ms(now_ms()).await;
        restarted.compact(now_ms()).await.unwrap();
        assert_eq!(versions_of(&restarted, &t, "d-15").await, 0);
        let dir_d = tempfile::tempdir().unwrap();
        let last = open(dir_d.path(), &backend).await;
        assert_eq!(export_lines(&last), expected);
        last.close().await;

        // When the newest rows are all removed, a rebuilt graph is still at the head, and
        // its snapshot is recent enough to be used.
        put(&restarted, &t, device_json("d-31", "short-lived")).await;
        delete(&restarted, &t, "d-31").await;
        after_ms(now_ms()).await;
        restarted.compact(now_ms()).await.unwrap();
        let state = restarted.compaction_state().await.unwrap();
        let head = restarted.journal_head().await.unwrap();
        assert_eq!(
            state.tombstones_through_seq, head,
            "the deletion was the newest row"
        );
        let dir_e = tempfile::tempdir().unwrap();
        let rebuilt = open(dir_e.path(), &backend).await;
        assert_eq!(rebuilt.applied_seq(), head);
        assert_eq!(export_lines(&rebuilt), expected);
        let snapshot = rebuilt.snapshot().await.unwrap().expect("a snapshot");
        assert!(snapshot.seq >= state.tombstones_through_seq);
    }
}

#[tokio::test]
async fn a_removed_deletion_of_a_re_created_resource_is_not_missed() {
    for backend in backends().await {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let backend = shared(&backend, dir_a.path());
        let t = tenant("acme");
        let a = open(dir_a.path(), &backend).await;
        // An edge node written without a live context keeps the reported one...
        put(&a, &t, edge_json("gw", 4)).await;
        report(&a, &t, "gw", 7.0).await;
        a.snapshot().await.unwrap().expect("a snapshot");
        let lagging = open(dir_b.path(), &backend).await;
        // ...but not across a deletion: the re-created one has none.
        delete(&a, &t, "gw").await;
        put(&a, &t, edge_json("gw", 8)).await;
        let before_ms = now_ms();
        after_ms(before_ms).await;
        put(&a, &t, device_json("later", "after the cutoff")).await;
        let expected = export_lines(&a);
        a.compact(before_ms).await.unwrap();
        assert!(a.compaction_state().await.unwrap().tombstones_through_seq > 0);

        // The snapshot holds the first gw with its report: it is not used.
        a.close().await;
        let restarted = open(dir_a.path(), &backend).await;
        assert_eq!(export_lines(&restarted), expected, "{}", backend.name);
        // A replica that had the first gw cannot follow.
        assert!(matches!(
            lagging.catch_up().await,
            Err(StoreError::BehindCompaction { .. })
        ));
        // Nor write: nothing is appended for it.
        let head = restarted.journal_head().await.unwrap();
        assert!(matches!(
            lagging
                .write_one(
                    Change::put(t.clone(), resource(device_json("refused", "x"))),
                    "x",
                    ChangeSource::Cli
                )
                .await,
            Err(StoreError::BehindCompaction { .. })
        ));
        assert_eq!(restarted.journal_head().await.unwrap(), head);
    }
}

#[tokio::test]
async fn one_replica_per_interval_compacts_with_the_configured_retention() {
    for backend in backends().await {
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let backend = shared(&backend, dir_a.path());
        let replica = |dir: &std::path::Path, retention: Option<u64>| {
            let mut config = helpers::config(dir, &backend);
            config.journal_retention = retention.map(std::time::Duration::from_millis);
            config.compaction_interval = std::time::Duration::from_secs(3600);
            KnowledgeStore::open(config)
        };
        let keep_all = replica(dir_b.path(), None).await.unwrap();
        let t = tenant("acme");
        for name in ["v1", "v2", "v3"] {
            put(&keep_all, &t, device_json("d", name)).await;
        }
        assert_eq!(keep_all.compact_if_due().await.unwrap(), None);
        assert_eq!(versions_of(&keep_all, &t, "d").await, 3);

        let a = replica(dir_a.path(), Some(1)).await.unwrap();
        after_ms(now_ms() + 1).await;
        let first = a.compact_if_due().await.unwrap().expect("a compaction run");
        assert_eq!(first.rows_removed, 2, "{}", backend.name);
        assert_eq!(versions_of(&a, &t, "d").await, 1);
        // The run is taken for this interval: neither replica runs it again yet.
        put(&a, &t, device_json("d", "v4")).await;
        after_ms(now_ms() + 1).await;
        assert_eq!(a.compact_if_due().await.unwrap(), None);
        let b = replica(dir_b.path(), Some(1)).await.unwrap();
        assert_eq!(b.compact_if_due().await.unwrap(), None);
        assert_eq!(versions_of(&b, &t, "d").await, 2);
        let state = b.compaction_state().await.unwrap();
        assert_eq!(state.compacted_through_seq, first.cutoff_seq);
        assert_eq!(state.tombstones_through_seq, 0, "nothing was deleted");
    }
}

#[tokio::test]
async fn replicas_starting_together_on_a_new_journal_migrate_it_once() {
    for backend in backends().await {
        let dirs: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
        let backend = shared(&backend, dirs[0].path());
        // Four opens race on an empty database: each runs the migrations.
        let opening: Vec<_> = dirs
            .iter()
            .map(|dir| tokio::spawn(KnowledgeStore::open(helpers::config(dir.path(), &backend))))
            .collect();
        let mut stores = Vec::new();
        for open in opening {
            let opened = open.await.unwrap();
            stores.push(opened.unwrap_or_else(|e| panic!("{}: {e}", backend.name)));
        }
        // One journal, one schema: a write through any replica reaches every other.
        let t = tenant("acme");
        put(&stores[3], &t, device_json("d", "from the last")).await;
        for store in &stores {
            store.catch_up().await.unwrap();
            assert!(
                store.get(&t, &id("d")).unwrap().is_some(),
                "{}",
                backend.name
            );
        }
    }
}

#[tokio::test]
async fn a_postgres_url_asking_for_tls_gets_it() {
    use sqlx::{Connection, Row};
    for backend in backends().await {
        let Some(url) = &backend.database_url else {
            continue;
        };
        let database = url.rsplit('/').next().unwrap().to_owned();
        let dir = tempfile::tempdir().unwrap();
        let mut config = helpers::config(dir.path(), &backend);
        config.database_url = format!("{url}?sslmode=require");
        let store = KnowledgeStore::open(config.clone()).await.unwrap();
        put(&store, &tenant("acme"), device_json("d", "over TLS")).await;
        // The server's own view: this database's connections are encrypted.
        let mut admin = sqlx::PgConnection::connect(url).await.unwrap();
        let encrypted: i64 = sqlx::query(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE datname = $1 AND ssl AND pid <> pg_backend_pid()",
        )
        .bind(&database)
        .fetch_one(&mut admin)
        .await
        .unwrap()
        .get(0);
        assert!(encrypted >= 1, "no encrypted connection to {database}");
        store.close().await;

        // Verifying the server's certificate is asked for: this server's self-signed one
        // is refused, with a reason.
        config.database_url = format!("{url}?sslmode=verify-full");
        let refused = KnowledgeStore::open(config).await.unwrap_err().to_string();
        assert!(
            refused.to_lowercase().contains("certificate") || refused.contains("tls"),
            "{refused}"
        );
    }
}

/// `backend` for several stores on one journal: PostgreSQL as it is, SQLite through one
/// file in `dir`.
fn shared(backend: &helpers::Backend, dir: &std::path::Path) -> helpers::Backend {
    match &backend.database_url {
        Some(_) => backend.clone(),
        None => helpers::Backend {
            name: "sqlite",
            database_url: Some(dir.join("shared.db").display().to_string()),
        },
    }
}

async fn versions_of(store: &KnowledgeStore, t: &Tenant, name: &str) -> usize {
    store.history(t, &id(name)).await.unwrap().len()
}
