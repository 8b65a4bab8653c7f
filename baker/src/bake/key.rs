//! Stage keys: sha256 over the stage's definition, the contents of its inputs (files,
//! templates, patches, source trees, blob checksums) and the previous stage's key, so a
//! change anywhere invalidates that stage and every later one, and nothing earlier.

use std::fs;
use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};

use super::BakeError;
use crate::recipe::stemcell::{Source, Stage, StemcellRecipe, Toolchain};

/// Bump when the engine's handling of a stage kind changes what it produces.
const ENGINE_VERSION: &str = "pifoundry-stage-v1";

pub fn stage_keys(
    recipe: &StemcellRecipe,
    root: &Path,
    blobs: &dyn super::Blobs,
) -> Result<Vec<String>, BakeError> {
    let mut prev = String::new();
    let mut keys = Vec::with_capacity(recipe.stages.len());
    for stage in &recipe.stages {
        let mut h = Sha256::new();
        let mut field = |name: &str, value: &[u8]| {
            h.update((name.len() as u64).to_le_bytes());
            h.update(name.as_bytes());
            h.update((value.len() as u64).to_le_bytes());
            h.update(value);
        };
        field("engine", ENGINE_VERSION.as_bytes());
        field("previous", prev.as_bytes());
        field("arch", recipe.arch.to_string().as_bytes());
        field("epoch", recipe.source_date_epoch().to_string().as_bytes());
        field(
            "stage",
            serde_json::to_string(stage).expect("stage").as_bytes(),
        );
        let blob = |key: &str| {
            blobs.sha256(key).map_err(|reason| BakeError::Blob {
                stage: stage.name().into(),
                key: key.into(),
                reason,
            })
        };
        let read = |p: &Path| {
            let path = root.join(p);
            fs::read(&path).map_err(|e| BakeError::Stage {
                stage: stage.name().into(),
                kind: stage.kind(),
                message: format!("{}: {e}", path.display()),
            })
        };
        match stage {
            Stage::Files(s) => {
                for f in &s.files {
                    field("file", &read(&f.src)?);
                }
                if s.files.iter().any(|f| f.template) {
                    field("header", header(recipe).as_bytes());
                }
            }
            Stage::GoBuild(s) => {
                match &s.source {
                    Source::Blob(k) => field("source-blob", blob(k)?.as_bytes()),
                    Source::Path(p) => {
                        let tree = tree_hash(&root.join(p)).map_err(|e| BakeError::Stage {
                            stage: s.name.clone(),
                            kind: "go-build",
                            message: format!("source.path {}: {e}", p.display()),
                        })?;
                        field("source-tree", tree.as_bytes());
                    }
                }
                match &s.toolchain {
                    Toolchain::Blob(k) => field("toolchain-blob", blob(k)?.as_bytes()),
                    Toolchain::System => field("toolchain", system_go_version().as_bytes()),
                }
                for p in &s.patches {
                    field("patch", &read(p)?);
                }
            }
            Stage::Image(_) => {
                field("header", header(recipe).as_bytes());
                // The audit gate runs here: its allow-list feeds this key and later ones only.
                field(
                    "audit",
                    serde_json::to_string(&recipe.audit)
                        .expect("audit")
                        .as_bytes(),
                );
            }
            Stage::Stemcell(_) => field("header", header(recipe).as_bytes()),
            Stage::Rootfs(_) | Stage::Users(_) | Stage::Chroot(_) | Stage::Initramfs(_) => {}
        }
        prev = hex::encode(h.finalize());
        keys.push(prev.clone());
    }
    Ok(keys)
}

/// The recipe fields that templates and the manifest see.
fn header(r: &StemcellRecipe) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}",
        r.name, r.version, r.operating_system, r.arch, r.board
    )
}

fn system_go_version() -> String {
    Command::new("go")
        .arg("version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|_| "go: not found".into())
}

/// Hash of a directory tree: relative paths, kinds, modes, contents and link targets.
pub fn tree_hash(dir: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut h = Sha256::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(std::io::Error::other)?;
        let rel = entry.path().strip_prefix(dir).expect("below dir");
        let meta = entry.path().symlink_metadata()?;
        h.update(rel.as_os_str().as_encoded_bytes());
        h.update([0]);
        h.update(meta.permissions().mode().to_le_bytes());
        if meta.file_type().is_symlink() {
            h.update(fs::read_link(entry.path())?.as_os_str().as_encoded_bytes());
        } else if meta.is_file() {
            h.update(super::cache::sha256_file(entry.path())?.as_bytes());
        }
        h.update([0]);
    }
    Ok(hex::encode(h.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::stemcell::AllowEntry;

    /// CI keeps a warm cache of every stage before `image`: the audit allow-list must not
    /// touch those keys.
    #[test]
    fn audit_policy_only_feeds_image_and_later_keys() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut recipe =
            StemcellRecipe::load(&root.join("recipes/stemcells/ci-armv6l.yml")).unwrap();
        let image = recipe.stage_index("image").unwrap();
        let before = stage_keys(&recipe, &root, &crate::bake::blobs::NoBlobs).unwrap();
        recipe.audit.allow.push(AllowEntry {
            path: "usr/bin/new".into(),
            reason: "test".into(),
        });
        let after = stage_keys(&recipe, &root, &crate::bake::blobs::NoBlobs).unwrap();
        for (i, stage) in recipe.stages.iter().enumerate() {
            eprintln!("{} {}", before[i], stage.name());
            assert_eq!(before[i] == after[i], i < image, "stage {}", stage.name());
        }
    }
}
