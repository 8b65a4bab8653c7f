//! `extends:` for stemcell recipes: a variant names its base recipe and says only what
//! differs. Top-level keys replace the base's; each entry of `stages` replaces the base stage
//! of the same name, in the base's position. A variant cannot add, drop or reorder stages,
//! so it bakes exactly the base's pipeline — which is the point of the CI variants.

use std::path::Path;

use serde_yaml::{Mapping, Value};

use super::RecipeError;

/// How deep `extends` chains may go (a guard against cycles).
const MAX_DEPTH: usize = 4;

/// Reads `path`; if it extends a base recipe, returns the merged document.
/// `None` means the file extends nothing and should be parsed from its text as it is.
pub fn resolve(path: &Path, text: &str) -> Result<Option<Value>, RecipeError> {
    let doc: Value = serde_yaml::from_str(text).map_err(|e| parse_error(path, e))?;
    if doc.get("extends").is_none() {
        return Ok(None);
    }
    merged(path, doc, 0).map(Some)
}

fn merged(path: &Path, doc: Value, depth: usize) -> Result<Value, RecipeError> {
    let Value::Mapping(mut child) = doc else {
        return Err(invalid(path, "(top level)", "a recipe is a mapping"));
    };
    let Some(base_ref) = child.remove("extends") else {
        return Ok(Value::Mapping(child));
    };
    if depth >= MAX_DEPTH {
        return Err(invalid(path, "extends", "chain is too deep (a cycle?)"));
    }
    let Value::String(base_ref) = base_ref else {
        return Err(invalid(path, "extends", "must be a recipe file name"));
    };
    let base_path = path.parent().unwrap_or(Path::new(".")).join(&base_ref);
    let base_text = super::read(&base_path)?;
    let base_doc: Value =
        serde_yaml::from_str(&base_text).map_err(|e| parse_error(&base_path, e))?;
    let Value::Mapping(mut base) = merged(&base_path, base_doc, depth + 1)? else {
        unreachable!("merged returns a mapping");
    };

    if let Some(stages) = child.remove("stages") {
        replace_stages(path, &base_path, &mut base, stages)?;
    }
    for (k, v) in child {
        base.insert(k, v);
    }
    Ok(Value::Mapping(base))
}

fn replace_stages(
    path: &Path,
    base_path: &Path,
    base: &mut Mapping,
    stages: Value,
) -> Result<(), RecipeError> {
    let Value::Sequence(overrides) = stages else {
        return Err(invalid(path, "stages", "must be a list of stages"));
    };
    let Some(Value::Sequence(base_stages)) = base.get_mut("stages") else {
        return Err(invalid(base_path, "stages", "must be a list of stages"));
    };
    for (i, stage) in overrides.into_iter().enumerate() {
        let Some(name) = stage.get("name").and_then(Value::as_str).map(str::to_owned) else {
            return Err(invalid(path, &format!("stages[{i}].name"), "is required"));
        };
        let slot = base_stages
            .iter_mut()
            .find(|s| s.get("name").and_then(Value::as_str) == Some(name.as_str()))
            .ok_or_else(|| {
                invalid(
                    path,
                    &format!("stages[{i}] ({name})"),
                    &format!(
                        "no stage of that name in {}: a variant only replaces stages",
                        base_path.display()
                    ),
                )
            })?;
        *slot = stage;
    }
    Ok(())
}

fn parse_error(path: &Path, e: serde_yaml::Error) -> RecipeError {
    RecipeError::parse(path, e)
}

fn invalid(path: &Path, field: &str, message: &str) -> RecipeError {
    RecipeError::invalid(path, field, message)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::recipe::stemcell::{Source, Stage, StemcellRecipe};

    const BASE: &str = "\
name: base
version: '1'
operating_system: debian-bookworm-armv6l
arch: armv6l
board: rpi-zero
stages:
  - {name: root, kind: rootfs, suite: bookworm, variant: minbase, packages: [kmod]}
  - {name: agent, kind: go-build, source: {blob: bosh-agent-src}, toolchain: system, install: /a}
  - {name: later, kind: chroot, commands: ['true']}
";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_variant_replaces_a_stage_in_place_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "base.yml", BASE);
        let v = write(
            dir.path(),
            "ci.yml",
            "extends: base.yml\nname: ci\nstages:\n  - {name: agent, kind: go-build, source: {path: stub}, toolchain: system, install: /a}\n",
        );
        let r = StemcellRecipe::load(&v).unwrap();
        assert_eq!(r.name, "ci");
        assert_eq!(r.version, "1");
        let names: Vec<_> = r.stages.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["root", "agent", "later"]);
        let Stage::GoBuild(g) = &r.stages[1] else {
            panic!("agent is a go-build stage")
        };
        assert_eq!(g.source, Source::Path("stub".into()));
    }

    #[test]
    fn a_variant_cannot_add_a_stage() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "base.yml", BASE);
        let v = write(
            dir.path(),
            "ci.yml",
            "extends: base.yml\nstages:\n  - {name: extra, kind: chroot, commands: ['true']}\n",
        );
        let e = StemcellRecipe::load(&v).unwrap_err().to_string();
        assert!(
            e.contains("ci.yml") && e.contains("stages[0] (extra)"),
            "{e}"
        );
        assert!(e.contains("no stage of that name"), "{e}");
    }

    #[test]
    fn a_missing_base_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let v = write(dir.path(), "ci.yml", "extends: nowhere.yml\n");
        let e = StemcellRecipe::load(&v).unwrap_err().to_string();
        assert!(e.contains("nowhere.yml"), "{e}");
    }

    #[test]
    fn a_cycle_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yml", "extends: b.yml\n");
        let b = write(dir.path(), "b.yml", "extends: a.yml\n");
        let e = StemcellRecipe::load(&b).unwrap_err().to_string();
        assert!(e.contains("extends") && e.contains("too deep"), "{e}");
    }

    #[test]
    fn unknown_keys_in_a_variant_are_still_errors() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "base.yml", BASE);
        let v = write(dir.path(), "ci.yml", "extends: base.yml\ncolour: red\n");
        let e = StemcellRecipe::load(&v).unwrap_err().to_string();
        assert!(e.contains("ci.yml") && e.contains("colour"), "{e}");
    }
}
