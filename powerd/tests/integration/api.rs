use std::time::Duration;

use crate::support::{Fixture, SIMS, TOKEN, gaps, states};
use powerd_client::{Credentials, Method, StatusCode};

#[tokio::test]
async fn mutations_need_a_token_and_accept_bearer_or_basic() {
    let fx = Fixture::new();
    let srv = fx.start(&fx.config(SIMS)).await;
    let body = Some(r#"{"state":"on"}"#);

    let r = srv
        .send(Method::PUT, "/v1/outlets/a/power", Credentials::None, body)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let challenges: Vec<_> = r.headers.get_all("www-authenticate").iter().collect();
    assert!(
        challenges
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("Bearer "))
    );
    assert!(
        challenges
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("Basic "))
    );
    assert_eq!(r.json()["error"]["code"], "unauthorized");

    let wrong = Credentials::Bearer("test-token-0123456780".into());
    let r = srv
        .send(Method::PUT, "/v1/outlets/a/power", wrong, body)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["message"], "the token is not valid");
    assert!(srv.transitions("a").is_empty());

    let r = srv
        .send(
            Method::PUT,
            "/v1/outlets/a/power",
            Credentials::Bearer(TOKEN.into()),
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.json());
    assert_eq!(r.json()["state"], "on");
    assert_eq!(r.json()["changed_by"], "tester");

    let basic = Credentials::Basic {
        user: "ironic".into(),
        password: TOKEN.into(),
    };
    let r = srv
        .send(
            Method::POST,
            "/redfish/v1/Systems/b/Actions/ComputerSystem.Reset",
            basic,
            Some(r#"{"ResetType":"On"}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        srv.call(Method::GET, "/v1/outlets/b", None).await.json()["changed_by"],
        "ironic (token tester)"
    );

    // Reads are closed too unless configured open.
    let r = srv
        .send(Method::GET, "/v1/outlets", Credentials::None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = srv
        .send(
            Method::GET,
            "/redfish/v1/Systems/a",
            Credentials::None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"]["code"], "Base.1.8.NoValidSession");
    srv.stop().await;

    // The audit log names who did what.
    let audit = std::fs::read_to_string(fx.path("audit.log")).unwrap();
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(
        (lines[0]["who"].as_str(), lines[0]["outlet"].as_str()),
        (Some("tester"), Some("a"))
    );
    assert_eq!(lines[1]["who"], "ironic (token tester)");
}

#[tokio::test]
async fn open_reads_still_guard_mutations() {
    let fx = Fixture::new();
    let d = fx.dir.path().display();
    let srv = fx
        .start(&fx.config(&format!(
            "auth: {{token_file: {d}/tokens, open_reads: true}}\n{SIMS}"
        )))
        .await;
    let r = srv
        .send(Method::GET, "/v1/outlets", Credentials::None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["outlets"].as_array().unwrap().len(), 2);
    let r = srv
        .send(
            Method::GET,
            "/v1/outlets",
            Credentials::Bearer("bad-token-0123456789".into()),
            None,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::UNAUTHORIZED,
        "a wrong token is refused even on open reads"
    );
    let r = srv
        .send(Method::POST, "/v1/outlets/a/cycle", Credentials::None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    srv.stop().await;
}

#[tokio::test]
async fn min_off_and_stagger_are_enforced_server_side() {
    let fx = Fixture::new();
    let min_off = Duration::from_millis(150);
    let stagger = Duration::from_millis(100);
    let cfg = fx.config(
        "power_on_stagger: 100ms\noutlets:\n  - {id: a, backend: sim, min_off: 150ms}\n  - {id: b, backend: sim, min_off: 150ms}\n  - {id: c, backend: sim, min_off: 150ms}\n",
    );
    let srv = fx.start(&cfg).await;

    // Three power-ons at once: they happen one after the other, a stagger apart.
    let (ra, rb, rc) = tokio::join!(
        srv.power("a", "on"),
        srv.power("b", "on"),
        srv.power("c", "on")
    );
    for r in [ra, rb, rc] {
        assert_eq!(r.status, StatusCode::OK);
    }
    let mut ons: Vec<_> = srv.running.app.sim.transitions();
    ons.sort_by_key(|t| t.at);
    assert_eq!(ons.len(), 3);
    for g in gaps(&ons) {
        assert!(
            g >= stagger,
            "power-ons {g:?} apart, stagger is {stagger:?}"
        );
    }

    // Off then on at once: the on waits min_off.
    assert_eq!(srv.power("b", "off").await.status, StatusCode::OK);
    assert_eq!(srv.power("b", "on").await.status, StatusCode::OK);
    // A cycle is off → min_off → on.
    let r = srv.call(Method::POST, "/v1/outlets/a/cycle", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["state"], "on");

    for id in ["a", "b"] {
        let t = srv.transitions(id);
        assert_eq!(states(&t), ["on", "off", "on"], "outlet {id}");
        assert!(
            t[2].at - t[1].at >= min_off,
            "outlet {id} off for only {:?}",
            t[2].at - t[1].at
        );
    }
    srv.stop().await;
}

#[tokio::test]
async fn restart_keeps_the_commanded_state() {
    let fx = Fixture::new();
    let cfg = fx.config(SIMS);
    let srv = fx.start(&cfg).await;
    assert_eq!(srv.power("a", "on").await.status, StatusCode::OK);
    srv.stop().await;
    let before = fx.opts.sim.transitions().len();

    // Same state file, same (simulated) hardware: nothing is switched, the state is remembered.
    let srv = fx.start(&cfg).await;
    let a = srv.call(Method::GET, "/v1/outlets/a", None).await.json();
    assert_eq!(
        (a["state"].as_str(), a["changed_by"].as_str()),
        (Some("on"), Some("tester"))
    );
    assert_eq!(
        srv.call(Method::GET, "/v1/outlets/b", None).await.json()["state"],
        "off"
    );
    assert_eq!(
        fx.opts.sim.transitions().len(),
        before,
        "a restart switched something"
    );
    srv.stop().await;

    // Fresh hardware (a controller reboot lost the level): the remembered state is restored.
    let fx2 = Fixture {
        dir: fx.dir,
        opts: powerd::server::Options::default(),
    };
    let srv = fx2.start(&cfg).await;
    assert_eq!(states(&srv.transitions("a")), ["on"]);
    let a = srv.call(Method::GET, "/v1/outlets/a", None).await.json();
    assert_eq!(
        (a["state"].as_str(), a["changed_by"].as_str()),
        (Some("on"), Some("powerd"))
    );
    srv.stop().await;
}

#[tokio::test]
async fn on_at_start_policies() {
    let fx = Fixture::new();
    let cfg = fx.config(
        "power_on_stagger: 50ms\noutlets:\n  - {id: a, backend: sim, on_at_start: on}\n  - {id: b, backend: sim, on_at_start: on}\n  - {id: c, backend: sim, on_at_start: off}\n",
    );
    let srv = fx.start(&cfg).await;
    let t = srv.running.app.sim.transitions();
    assert_eq!(
        t.iter()
            .map(|t| (t.outlet.as_str(), t.state.to_string()))
            .collect::<Vec<_>>(),
        [
            ("c", "off".to_string()),
            ("a", "on".to_string()),
            ("b", "on".to_string())
        ]
    );
    assert!(
        t[2].at - t[1].at >= Duration::from_millis(50),
        "start-up power-ons are staggered too"
    );
    srv.stop().await;
}

#[tokio::test]
async fn concurrent_requests_on_one_outlet_are_serialised() {
    let fx = Fixture::new();
    let srv = fx
        .start(&fx.config("outlets:\n  - {id: a, backend: sim, min_off: 50ms}\n"))
        .await;
    assert_eq!(srv.power("a", "on").await.status, StatusCode::OK);
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let client = srv.client.clone();
        calls.spawn(async move { client.call(Method::POST, "/v1/outlets/a/cycle", None).await });
    }
    for r in calls.join_all().await {
        assert_eq!(r.unwrap().status, StatusCode::OK);
    }
    let t = srv.transitions("a");
    let mut want = vec!["on".to_string()];
    for _ in 0..6 {
        want.extend(["off".to_string(), "on".to_string()]);
    }
    assert_eq!(states(&t), want, "cycles interleaved");
    for pair in t[1..].chunks(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(50));
    }
    srv.stop().await;
}

#[tokio::test]
async fn bad_requests_get_4xx_with_stable_codes() {
    let fx = Fixture::new();
    let srv = fx.start(&fx.config(SIMS)).await;
    let tok = || Credentials::Bearer(TOKEN.into());
    let cases = [
        (
            Method::PUT,
            "/v1/outlets/a/power",
            Some("{\"state\": on}"),
            400,
            "invalid_body",
            "invalid JSON body",
        ),
        (
            Method::PUT,
            "/v1/outlets/a/power",
            Some(r#"{"state":"maybe"}"#),
            400,
            "invalid_body",
            "unknown variant `maybe`",
        ),
        (
            Method::PUT,
            "/v1/outlets/a/power",
            Some(r#"{"state":"on","force":true}"#),
            400,
            "invalid_body",
            "unknown field `force`",
        ),
        (
            Method::PUT,
            "/v1/outlets/a/power",
            None,
            400,
            "invalid_body",
            "the body is empty",
        ),
        (
            Method::PUT,
            "/v1/outlets/zz/power",
            Some(r#"{"state":"on"}"#),
            404,
            "outlet_not_found",
            "no outlet \"zz\"",
        ),
        (
            Method::GET,
            "/v1/outlets/zz",
            None,
            404,
            "outlet_not_found",
            "no outlet \"zz\"",
        ),
        (
            Method::POST,
            "/v1/outlets/zz/cycle",
            None,
            404,
            "outlet_not_found",
            "no outlet \"zz\"",
        ),
        (
            Method::GET,
            "/v1/nothing",
            None,
            404,
            "not_found",
            "no such resource: /v1/nothing",
        ),
        (
            Method::DELETE,
            "/v1/outlets/a",
            None,
            405,
            "method_not_allowed",
            "does not support",
        ),
    ];
    for (method, path, body, status, code, message) in cases {
        let r = srv.send(method.clone(), path, tok(), body).await;
        let v = r.json();
        assert_eq!(r.status.as_u16(), status, "{method} {path} {body:?}: {v}");
        assert_eq!(v["error"]["code"], code, "{method} {path}: {v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            m.contains(message),
            "{method} {path}: {m:?} should contain {message:?}"
        );
    }
    let reset = "/redfish/v1/Systems/a/Actions/ComputerSystem.Reset";
    let cases = [
        (
            reset,
            r#"{"ResetType":"Nmi"}"#,
            400,
            "Base.1.8.ActionParameterValueNotInList",
            "use one of On, ForceOff, ForceRestart, PowerCycle",
        ),
        (
            reset,
            r#"{"ResetType":7}"#,
            400,
            "Base.1.8.ActionParameterValueNotInList",
            "ResetType 7",
        ),
        (
            reset,
            r#"{}"#,
            400,
            "Base.1.8.ActionParameterMissing",
            "needs the parameter ResetType",
        ),
        (
            reset,
            r#"{"ResetType":"On""#,
            400,
            "Base.1.8.MalformedJSON",
            "invalid JSON body",
        ),
        (
            "/redfish/v1/Systems/zz/Actions/ComputerSystem.Reset",
            r#"{"ResetType":"On"}"#,
            404,
            "Base.1.8.ResourceNotFound",
            "no outlet \"zz\"",
        ),
    ];
    for (path, body, status, id, message) in cases {
        let r = srv.send(Method::POST, path, tok(), Some(body)).await;
        let v = r.json();
        assert_eq!(r.status.as_u16(), status, "{body}: {v}");
        assert_eq!(v["error"]["code"], id, "{body}: {v}");
        assert_eq!(v["error"]["@Message.ExtendedInfo"][0]["MessageId"], id);
        assert!(
            v["error"]["message"].as_str().unwrap().contains(message),
            "{v}"
        );
    }
    assert!(srv.running.app.sim.transitions().is_empty());
    let metrics =
        String::from_utf8(srv.call(Method::GET, "/metrics", None).await.body.to_vec()).unwrap();
    assert!(
        metrics.contains("powerd_errors_total{code=\"outlet_not_found\"} 4"),
        "{metrics}"
    );
    srv.stop().await;
}

#[tokio::test]
async fn backend_failure_is_a_502_and_keeps_the_state() {
    let fx = Fixture::new();
    let srv = fx.start(&fx.config(SIMS)).await;
    srv.running.app.sim.set_failing("a", true);
    let r = srv.power("a", "on").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.json()["error"]["code"], "backend_failed");
    assert_eq!(
        srv.call(Method::GET, "/v1/outlets/a", None).await.json()["state"],
        "off"
    );
    srv.running.app.sim.set_failing("a", false);
    assert_eq!(srv.power("a", "on").await.json()["state"], "on");
    srv.stop().await;
}

#[tokio::test]
async fn healthz_and_metrics() {
    let fx = Fixture::new();
    let srv = fx.start(&fx.config(SIMS)).await;
    let r = srv
        .send(Method::GET, "/healthz", Credentials::None, None)
        .await;
    assert_eq!(
        (r.status, r.json()["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    srv.power("a", "on").await;
    let m = String::from_utf8(srv.call(Method::GET, "/metrics", None).await.body.to_vec()).unwrap();
    assert!(
        m.contains("powerd_transitions_total{outlet=\"a\",state=\"on\"} 1"),
        "{m}"
    );
    assert!(m.contains("powerd_outlet_on{outlet=\"a\"} 1"), "{m}");
    assert!(m.contains("powerd_outlet_on{outlet=\"b\"} 0"), "{m}");
    assert!(m.contains("powerd_http_request_duration_seconds_count{method=\"PUT\",route=\"/v1/outlets/{id}/power\"} 1"), "{m}");
    srv.stop().await;
}

#[tokio::test]
async fn command_backend_through_the_api() {
    let fx = Fixture::new();
    let d = fx.dir.path().display();
    let cfg = fx.config(&format!(
        "outlets:\n  - id: hub-port-2\n    backend: command\n    on: touch {d}/{{{{id}}}}.on\n    off: rm {d}/{{{{id}}}}.on\n  - id: broken\n    backend: command\n    on: echo 'no such hub' >&2; exit 4\n    off: 'true'\n  - id: slow\n    backend: command\n    on: sleep 5\n    off: 'true'\n    timeout: 100ms\n"
    ));
    let srv = fx.start(&cfg).await;
    assert_eq!(srv.power("hub-port-2", "on").await.status, StatusCode::OK);
    assert!(fx.path("hub-port-2.on").exists());
    assert_eq!(srv.power("hub-port-2", "off").await.status, StatusCode::OK);
    assert!(!fx.path("hub-port-2.on").exists());

    let r = srv.power("broken", "on").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let m = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        m.contains("outlet broken:") && m.contains("exit status: 4") && m.contains("no such hub"),
        "{m}"
    );

    let r = srv.power("slow", "on").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timed out after 100ms")
    );
    assert_eq!(
        srv.call(Method::GET, "/v1/outlets/slow", None).await.json()["state"],
        "off"
    );
    srv.stop().await;
}

#[tokio::test]
async fn ctl_talks_to_the_daemon() {
    use powerd::ctl::{CtlCommand, execute};
    let fx = Fixture::new();
    let srv = fx.start(&fx.config(SIMS)).await;
    let out = execute(&srv.client, &CtlCommand::On { id: "b".into() })
        .await
        .unwrap();
    assert!(out.lines().nth(1).unwrap().starts_with("b   on"), "{out}");
    let out = execute(&srv.client, &CtlCommand::List).await.unwrap();
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].starts_with("ID  STATE  BACKEND"), "{out}");
    assert!(rows[1].starts_with("a   off    sim      -"), "{out}");
    let err = execute(&srv.client, &CtlCommand::Cycle { id: "zz".into() })
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .ends_with("404 outlet_not_found: no outlet \"zz\""),
        "{err}"
    );
    srv.stop().await;
}
