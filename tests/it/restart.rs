//! Acknowledged writes survive the process being killed with SIGKILL.

use serde_json::json;

use crate::common::{tutorial_declaration, Server};

#[test]
fn acknowledged_writes_survive_kill_9() {
    let server = Server::start();
    for i in 0..5 {
        let r = server.call(
            "CreatePipeline",
            json!({"pipeline": tutorial_declaration(&format!("p{i}"))}),
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let mut v2 = tutorial_declaration("p1");
    v2["stages"][1]["actions"][0]["name"] = "deploy".into();
    assert_eq!(
        server
            .call("UpdatePipeline", json!({"pipeline": v2}))
            .status,
        200
    );
    let arn = "arn:aws:codepipeline:eu-central-1:000000000000:p2";
    let tags = json!({"resourceArn": arn, "tags": [{"key": "k", "value": "v"}, {"key": "x", "value": "y"}]});
    assert_eq!(server.call("TagResource", tags).status, 200);
    assert_eq!(
        server
            .call(
                "UntagResource",
                json!({"resourceArn": arn, "tagKeys": ["x"]})
            )
            .status,
        200
    );
    assert_eq!(
        server.call("DeletePipeline", json!({"name": "p3"})).status,
        200
    );

    let reads = |s: &Server| {
        vec![
            s.call("ListPipelines", json!({})).body,
            s.call("GetPipeline", json!({"name": "p1"})).body,
            s.call("GetPipeline", json!({"name": "p1", "version": 1}))
                .body,
            s.call("GetPipeline", json!({"name": "p3"})).body,
            s.call("ListTagsForResource", json!({"resourceArn": arn}))
                .body,
        ]
    };
    let before = reads(&server);
    let dir = server.data_dir.clone();
    let tmp = server.kill9();

    let restarted = Server::start_in(&dir);
    let after = reads(&restarted);
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(String::from_utf8_lossy(b), String::from_utf8_lossy(a));
    }
    // Writes go on from where the log stopped.
    let r = restarted.call(
        "CreatePipeline",
        json!({"pipeline": tutorial_declaration("p1")}),
    );
    assert_eq!(r.error_code(), "PipelineNameInUseException");
    let r = restarted.call(
        "UpdatePipeline",
        json!({"pipeline": tutorial_declaration("p1")}),
    );
    assert_eq!(r.json()["pipeline"]["version"], 3);
    drop(restarted);
    drop(tmp);
}

#[test]
fn concurrent_writes_are_all_durable() {
    let server = Server::start();
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let client = server.client();
            std::thread::spawn(move || {
                for i in 0..10 {
                    let r = client.call(
                        "CreatePipeline",
                        json!({"pipeline": tutorial_declaration(&format!("t{t}-{i}"))}),
                    );
                    assert_eq!(r.status, 200);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    let restarted = Server::start_in(&dir);
    let list = restarted
        .call("ListPipelines", json!({"maxResults": 1000}))
        .json();
    assert_eq!(list["pipelines"].as_array().unwrap().len(), 80);
}

/// SIGKILL while many writes are in flight: every acknowledged one is there after the restart,
/// whatever the crash cut in the middle of, and the log takes new writes.
#[test]
fn a_kill_9_amid_writes_keeps_every_acknowledged_one() {
    kill_9_amid_writes("sled");
}

#[test]
fn a_kill_9_amid_writes_keeps_every_acknowledged_one_on_sqlite() {
    kill_9_amid_writes("sqlite");
}

fn kill_9_amid_writes(engine: &str) {
    let env = [("CODEPIPELINE_LOCAL_ENGINE", engine)];
    let server = Server::start_with(&env);
    let (acked, acks) = std::sync::mpsc::channel::<String>();
    let writers: Vec<_> = (0..8)
        .map(|t| {
            let client = server.client();
            let acked = acked.clone();
            std::thread::spawn(move || {
                for i in 0.. {
                    let name = format!("k{t}-{i}");
                    let body = json!({"pipeline": tutorial_declaration(&name)});
                    match client.try_call("CreatePipeline", body) {
                        Some(r) if r.status == 200 => acked.send(name).unwrap(),
                        Some(r) => panic!("CreatePipeline answered {}", r.status),
                        None => return,
                    }
                }
            })
        })
        .collect();
    drop(acked);
    let mut names = Vec::new();
    while names.len() < 200 {
        let name = acks
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("200 acknowledged creations within 60 s");
        names.push(name);
    }
    let dir = server.data_dir.clone();
    let _tmp = server.kill9();
    for w in writers {
        w.join().unwrap();
    }
    names.extend(acks.try_iter());

    let restarted = Server::try_start_with(&dir, &env).unwrap();
    for name in &names {
        let r = restarted.call("GetPipeline", json!({"name": name}));
        assert_eq!(r.status, 200, "acknowledged pipeline {name} is missing");
        let r = restarted.call("ListPipelineExecutions", json!({"pipelineName": name}));
        assert_eq!(r.status, 200);
    }
    let listed = restarted
        .call("ListPipelines", json!({"maxResults": 1000}))
        .json()["pipelines"]
        .as_array()
        .unwrap()
        .len();
    assert!(
        listed >= names.len(),
        "{listed} listed, {} acknowledged",
        names.len()
    );
    let r = restarted.call(
        "CreatePipeline",
        json!({"pipeline": tutorial_declaration("after-the-crash")}),
    );
    assert_eq!(r.status, 200);
    let r = restarted.call(
        "CreatePipeline",
        json!({"pipeline": tutorial_declaration(&names[0])}),
    );
    assert_eq!(r.json()["__type"], "PipelineNameInUseException");
}

#[test]
fn a_data_dir_of_another_engine_is_refused_clearly() {
    let server = Server::start_with(&[("CODEPIPELINE_LOCAL_ENGINE", "sqlite")]);
    let r = server.call(
        "CreatePipeline",
        json!({"pipeline": tutorial_declaration("kept")}),
    );
    assert_eq!(r.status, 200);
    let dir = server.data_dir.clone();
    let tmp = server.terminate();
    let err = match Server::try_start_in(&dir) {
        Ok(_) => panic!("a sled server opened a SQLite data dir"),
        Err(e) => e,
    };
    assert!(
        err.contains("is kept by sqlite, and engine is set to sled"),
        "{err}"
    );
    // With the engine it was written by, it opens as it was left.
    let again = Server::try_start_with(&dir, &[("CODEPIPELINE_LOCAL_ENGINE", "sqlite")]).unwrap();
    assert_eq!(
        again.call("GetPipeline", json!({"name": "kept"})).status,
        200
    );
    drop(tmp);
}

#[test]
fn a_data_dir_of_a_newer_format_is_refused_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    codepipeline_local::eventstore::sled_store::SledStore::stamp_format_version(
        &tmp.path().join("events"),
        99,
    )
    .unwrap();
    let err = match Server::try_start_in(tmp.path()) {
        Ok(_) => panic!("a newer data dir was opened"),
        Err(e) => e,
    };
    assert!(err.contains("format version 99"), "{err}");
}
