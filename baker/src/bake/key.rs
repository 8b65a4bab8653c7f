//! Stage keys: sha256 over the stage's definition, the contents of its inputs (files,
//! templates, patches, source trees, blob checksums: each kind's [`StageKind::key_inputs`])
//! and the previous stage's key, so a change anywhere invalidates that stage and every later
//! one, and nothing earlier.

use std::path::Path;

use super::BakeError;
use super::stages::KeyInputs;
use crate::blobs::Blobs;
use crate::recipe::stemcell::StemcellRecipe;

/// Bump when the engine's handling of a stage kind changes what it produces.
const ENGINE_VERSION: &str = "pifoundry-stage-v1";

/// One key per stage; the error names the stage whose inputs could not be read.
pub fn stage_keys(
    recipe: &StemcellRecipe,
    root: &Path,
    blobs: &dyn Blobs,
) -> Result<Vec<String>, BakeError> {
    let mut prev = String::new();
    let mut keys = Vec::with_capacity(recipe.stages.len());
    for stage in &recipe.stages {
        let mut key = KeyInputs::new(recipe.header(), &recipe.audit, root, blobs);
        key.field("engine", ENGINE_VERSION.as_bytes());
        key.field("previous", prev.as_bytes());
        key.field("arch", recipe.arch.to_string().as_bytes());
        key.field("epoch", recipe.source_date_epoch().to_string().as_bytes());
        key.field(
            "stage",
            serde_json::to_string(stage).expect("stage").as_bytes(),
        );
        stage
            .def()
            .key_inputs(&mut key)
            .map_err(|e| BakeError::in_stage(stage, e))?;
        prev = key.finish();
        keys.push(prev.clone());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::AllowEntry;

    /// CI keeps a warm cache of every stage before `image`: the audit allow-list must not
    /// touch those keys.
    #[test]
    fn audit_policy_only_feeds_image_and_later_keys() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut recipe =
            StemcellRecipe::load(&root.join("recipes/stemcells/ci-armv6l.yml")).unwrap();
        let image = recipe.stage_index("image").unwrap();
        let before = stage_keys(&recipe, &root, &crate::blobs::NoBlobs).unwrap();
        recipe.audit.allow.push(AllowEntry {
            path: "usr/bin/new".into(),
            reason: "test".into(),
        });
        let after = stage_keys(&recipe, &root, &crate::blobs::NoBlobs).unwrap();
        for (i, stage) in recipe.stages.iter().enumerate() {
            eprintln!("{} {}", before[i], stage.name());
            assert_eq!(before[i] == after[i], i < image, "stage {}", stage.name());
        }
    }
}
