//! The director runs many CPI processes at once: 50 parallel create_vm against 20 free Pis
//! give exactly 20 VMs and 30 clear non-retryable errors, and nothing leaks.

use serde_json::json;

use crate::support::prov;
use crate::support::{cpi, request};

#[test]
fn fifty_create_vms_on_twenty_pis() {
    let (p, _http) = prov::powerd(20);
    let cfg = p.config();
    let work = tempfile::tempdir().unwrap();
    let image = prov::stemcell_image(work.path());
    let stemcell = cpi(
        Some(&cfg),
        &request(
            "create_stemcell",
            json!([image.display().to_string(), {"architecture": "arm64"}]),
        ),
    )
    .result()
    .as_str()
    .unwrap()
    .to_string();

    let answers: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let (cfg, stemcell) = (&cfg, &stemcell);
                s.spawn(move || {
                    let nets = json!({"d": {"type": "dynamic", "cloud_properties": {}}});
                    cpi(
                        Some(cfg),
                        &request(
                            "create_vm",
                            json!([format!("agent-{i}"), stemcell, {}, nets, [], {}]),
                        ),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (ok, failed): (Vec<_>, Vec<_>) = answers.iter().partition(|a| a.json["error"].is_null());
    assert_eq!(ok.len(), 20, "VMs created");
    assert_eq!(failed.len(), 30);
    for f in &failed {
        let e = &f.json["error"];
        assert_eq!(e["type"], "Bosh::Clouds::CloudError", "{}", f.json);
        assert_eq!(e["ok_to_retry"], false, "{}", f.json);
        assert!(
            e["message"].as_str().unwrap().contains("no_free_pi"),
            "{}",
            f.json
        );
    }

    let powerd = prov::client(&p);
    let mut ids: Vec<String> = ok
        .iter()
        .map(|a| a.json["result"][0].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 20, "distinct VM ids");
    let vms = powerd.vms().unwrap();
    assert_eq!(vms.len(), 20);
    let pis = powerd.pis().unwrap();
    let mut claimed: Vec<&str> = pis.iter().filter_map(|p| p.vm.as_deref()).collect();
    claimed.sort();
    assert_eq!(
        claimed,
        ids.iter().map(String::as_str).collect::<Vec<_>>(),
        "one Pi per VM, none without"
    );
    let mut addresses: Vec<&str> = vms.iter().map(|v| v.address.as_str()).collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 20, "one reservation per VM");

    // and all of it goes away again
    for id in &ids {
        cpi(Some(&cfg), &request("delete_vm", json!([id]))).result();
    }
    assert!(powerd.vms().unwrap().is_empty());
    assert!(powerd.pis().unwrap().iter().all(|p| p.vm.is_none()));
}
