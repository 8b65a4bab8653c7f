//! What other tools read: the Redfish subset and the OpenAPI document.

use std::collections::BTreeSet;

use crate::support::{Fixture, SIMS, TOKEN, states};
use powerd_client::{Credentials, Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn redfish_shapes_and_reset() {
    let fx = Fixture::new();
    let srv = fx.start(&fx.config(SIMS)).await;
    let r = srv
        .send(Method::GET, "/redfish/v1/", Credentials::None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "the service root is open");
    assert_eq!(r.headers["odata-version"], "4.0");
    let root = r.json();
    assert_eq!(root["@odata.id"], "/redfish/v1");
    assert_eq!(root["@odata.type"], "#ServiceRoot.v1_15_0.ServiceRoot");
    assert_eq!(root["Systems"]["@odata.id"], "/redfish/v1/Systems");

    let systems = srv
        .call(Method::GET, "/redfish/v1/Systems", None)
        .await
        .json();
    assert_eq!(
        systems["@odata.type"],
        "#ComputerSystemCollection.ComputerSystemCollection"
    );
    assert_eq!(systems["Members@odata.count"], 2);
    assert_eq!(systems["Members"][1]["@odata.id"], "/redfish/v1/Systems/b");

    let sys = srv
        .call(Method::GET, "/redfish/v1/Systems/a", None)
        .await
        .json();
    assert_eq!(sys["@odata.id"], "/redfish/v1/Systems/a");
    assert!(
        sys["@odata.type"]
            .as_str()
            .unwrap()
            .starts_with("#ComputerSystem.v1_")
    );
    assert_eq!(sys["PowerState"], "Off");
    let reset = &sys["Actions"]["#ComputerSystem.Reset"];
    assert_eq!(
        reset["target"],
        "/redfish/v1/Systems/a/Actions/ComputerSystem.Reset"
    );
    assert_eq!(
        reset["ResetType@Redfish.AllowableValues"],
        json!(["On", "ForceOff", "ForceRestart", "PowerCycle"])
    );

    let target = reset["target"].as_str().unwrap();
    for (reset_type, power_state) in [
        ("On", "On"),
        ("PowerCycle", "On"),
        ("ForceOff", "Off"),
        ("ForceRestart", "On"),
    ] {
        let r = srv
            .call(Method::POST, target, Some(json!({"ResetType": reset_type})))
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{reset_type}");
        assert_eq!(
            srv.call(Method::GET, "/redfish/v1/Systems/a", None)
                .await
                .json()["PowerState"],
            power_state
        );
    }
    assert_eq!(
        states(&srv.transitions("a")),
        ["on", "off", "on", "off", "on"]
    );
    srv.stop().await;
}

#[tokio::test]
async fn openapi_lists_exactly_the_served_v1_routes() {
    let fx = Fixture::new();
    let srv = fx
        .start(&fx.config(&format!("{SIMS}{}", crate::support::prov::section(&fx))))
        .await;
    let r = srv
        .send(Method::GET, "/openapi.json", Credentials::None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let doc: serde_json::Value = serde_json::from_slice(&r.body).expect("openapi.json parses");
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let served: BTreeSet<(String, String)> = powerd::api::v1::routes()
        .into_iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, served);
    // Every documented operation is really answered (not a routing 404/405); the outlet
    // routes succeed, the provisioning ones answer with their own codes.
    for (method, path) in &documented {
        let outlets = path.starts_with("/v1/outlets");
        let path = path.replace("{id}", "a").replace("{serial}", "0000000a");
        let body = (method == "PUT").then_some(r#"{"state":"on"}"#);
        let r = srv
            .send(
                method.parse().unwrap(),
                &path,
                Credentials::Bearer(TOKEN.into()),
                body,
            )
            .await;
        if outlets {
            assert!(r.status.is_success(), "{method} {path}: {}", r.status);
        } else {
            let code = r.json()["error"]["code"].as_str().unwrap_or("").to_string();
            assert!(
                r.status != StatusCode::METHOD_NOT_ALLOWED && code != "not_found",
                "{method} {path}: {} {code}",
                r.status
            );
        }
    }
    // Every $ref resolves.
    let text = r.body.iter().map(|&b| b as char).collect::<String>();
    for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = &part[..part.find('"').unwrap()];
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "dangling $ref {name}"
        );
    }
    srv.stop().await;
}
