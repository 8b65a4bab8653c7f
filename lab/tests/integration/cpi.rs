//! The real `pifoundry-cpi` binary on the lab, run inside the lab's namespace as the
//! director runs it: one JSON request on stdin per call, the config file as argument, the
//! director's bare environment. The stemcell goes in as bosh-cli hands it over: the
//! tarball's `image` member and stemcell.MF's cloud_properties.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pifoundry_lab::layout::{API, CONTROLLER, Lab, workspace_binary};
use pifoundry_lab::netns;
use serde_json::{Value, json};

/// The CPI with its config file, for one lab.
pub struct Cpi {
    netns: String,
    cfg: PathBuf,
}

impl Cpi {
    /// A config file in `dir` for the lab's powerd, with this agent mbus URL.
    pub fn new(lab: &Lab, dir: &Path, mbus: &str) -> Cpi {
        let cfg = json!({
            "powerd": {"url": format!("http://{API}"), "token": lab.token().unwrap()},
            "request_timeout": 300,
            "agent": {
                "mbus": mbus,
                "ntp": [CONTROLLER],
                "blobstore": {"provider": "local", "options": {"blobstore_path": "/var/vcap/micro_bosh/data/cache"}}
            }
        });
        let path = dir.join("cpi.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
        Cpi {
            netns: lab.netns.clone(),
            cfg: path,
        }
    }

    /// One call; its `result` and wall time, or a panic with the CPI's error and stderr.
    pub fn call(&self, method: &str, args: Value) -> (Value, Duration) {
        let exe = workspace_binary("pifoundry-cpi").unwrap();
        assert!(
            exe.is_file(),
            "no pifoundry-cpi beside the test binary: cargo build -p cpi"
        );
        let req = json!({"method": method, "arguments": args, "context": {"director_uuid": "lab"}, "api_version": 2});
        let started = Instant::now();
        let mut child = netns::command(&self.netns, &exe)
            .arg(&self.cfg)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(req.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let took = started.elapsed();
        let answer: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{method}: no JSON answer ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(
            answer["error"],
            Value::Null,
            "{method}: {answer}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (answer["result"].clone(), took)
    }
}

/// The stemcell tarball's `image` member and stemcell.MF's cloud_properties, as bosh-cli
/// unpacks and sends them.
pub fn unpack_stemcell(out: &Path, dir: &Path) -> (PathBuf, Value) {
    let tgz = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "tgz"))
        .expect("the bake wrote a stemcell tarball");
    let st = Command::new("tar")
        .arg("-xzf")
        .arg(&tgz)
        .arg("-C")
        .arg(dir)
        .args(["image", "stemcell.MF"])
        .status()
        .unwrap();
    assert!(st.success(), "unpacking {}", tgz.display());
    let mf: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("stemcell.MF")).unwrap()).unwrap();
    let props = serde_json::to_value(&mf["cloud_properties"]).unwrap();
    (dir.join("image"), props)
}
