//! Release recipes (`recipes/releases/*.yml`): how to turn an upstream BOSH release into its
//! ARM counterpart. See `recipes/README.md` for the format.

use std::collections::BTreeMap;
use std::path::Path;

use globset::{Glob, GlobMatcher};
use pifoundry_util::Arch;
use serde::Deserialize;

use super::RecipeError;

/// The handlebars variables a recipe can use in paths, patches and added files.
pub fn vars(target: Arch) -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("arch", target.name()),
        ("goarch", target.goarch()),
        ("goarm", target.goarm().unwrap_or("")),
        ("debarch", target.debian()),
    ])
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseRecipe {
    /// The upstream release name this recipe is for; a different input is refused.
    pub release: String,
    /// `armv6l` or `arm64`.
    pub target: Arch,
    /// Appended to the release version, e.g. `+pi.armv6l`.
    pub version_suffix: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Glob over package names.
    pub packages: String,
    /// Glob over file paths inside the package (`replace` and `remove`).
    #[serde(default)]
    pub files: Option<String>,
    /// A rule that matches nothing is an error unless this is set.
    #[serde(default)]
    pub optional: bool,
    #[serde(default)]
    pub replace: Option<Replace>,
    #[serde(default)]
    pub patch: Option<Patch>,
    #[serde(default)]
    pub remove: bool,
    #[serde(default)]
    pub add: Option<Add>,
    /// The matched packages cannot be ported: fail with this message.
    #[serde(default)]
    pub unsupported: Option<String>,
}

/// Swap a file for a `blobs.lock` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Replace {
    /// Key in `blobs.lock`.
    pub blob: String,
    /// New path inside the package (handlebars); the old path if absent. Keep the old name
    /// only where the packaging needs it exactly: the summary says when it no longer
    /// describes the content.
    #[serde(default)]
    pub path: Option<String>,
    /// Why the swap may change the version in the file name (`1.23.1` to `1.23.2`); without
    /// it such a swap is refused. The summary prints the change and this reason.
    #[serde(default)]
    pub version_change: Option<String>,
    /// Swap in a `.tgz` holding the blob as the one member of exactly this name (mode 0755):
    /// for packaging that runs `tar -xzf x.tgz NAME` on a blob published as a bare binary.
    #[serde(default)]
    pub tgz_member: Option<String>,
}

/// Substitute text in a package script.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Patch {
    #[serde(default = "packaging")]
    pub file: String,
    #[serde(default)]
    pub literal: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    /// Replacement (handlebars; with `regex`, `$1` refers to capture groups).
    pub with: String,
}

fn packaging() -> String {
    "packaging".into()
}

/// Add a file to the package.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Add {
    pub path: String,
    /// Content (handlebars).
    pub content: String,
    #[serde(default)]
    pub executable: bool,
}

/// What a rule does, once validated.
#[derive(Debug, Clone)]
pub enum Action {
    Replace(Replace),
    Patch {
        file: String,
        find: Find,
        with: String,
    },
    Remove,
    Add(Add),
    Unsupported(String),
}

#[derive(Debug, Clone)]
pub enum Find {
    Literal(String),
    Regex(regex::Regex),
}

/// A rule ready to apply.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    /// `rules[3]` and the package glob, for messages.
    pub label: String,
    pub packages: GlobMatcher,
    pub files: Option<GlobMatcher>,
    pub optional: bool,
    pub action: Action,
}

impl ReleaseRecipe {
    pub fn load(path: &Path) -> Result<(Self, Vec<CompiledRule>), RecipeError> {
        Self::parse(path, &super::read(path)?)
    }

    /// Parses and validates `text` as if read from `path`; the error names the key or the rule.
    pub fn parse(path: &Path, text: &str) -> Result<(Self, Vec<CompiledRule>), RecipeError> {
        let invalid = |field: &str, message: &str| RecipeError::invalid(path, field, message);
        let recipe: ReleaseRecipe =
            serde_yaml::from_str(text).map_err(|e| RecipeError::parse(path, e))?;
        if !recipe.target.is_pi() {
            return Err(invalid(
                "target",
                &format!(
                    "{} is not a Raspberry Pi target (armv6l or arm64)",
                    recipe.target
                ),
            ));
        }
        if recipe.version_suffix.is_empty() {
            return Err(invalid(
                "version_suffix",
                "must not be empty: a rewritten release needs a new version",
            ));
        }
        if recipe.rules.is_empty() {
            return Err(invalid("rules", "at least one rule is needed"));
        }
        let vars = vars(recipe.target);
        let rules = recipe
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| r.compile(&format!("rules[{i}]"), &vars))
            .collect::<Result<_, _>>()
            .map_err(|(field, message)| invalid(&field, &message))?;
        Ok((recipe, rules))
    }

    /// Every `blobs.lock` key the rules may swap in.
    pub fn blob_keys(rules: &[CompiledRule]) -> Vec<&str> {
        rules
            .iter()
            .filter_map(|r| match &r.action {
                Action::Replace(rep) => Some(rep.blob.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// A rule's field (`rules[3] (packages "x").files`) and what is wrong with it.
type RuleError = (String, String);

fn glob(label: &str, key: &str, pattern: &str) -> Result<GlobMatcher, RuleError> {
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| {
            (
                format!("{label}.{key}"),
                format!("bad glob {pattern:?}: {e}"),
            )
        })
}

/// Renders a handlebars template with the target's variables; unknown variables are errors.
fn render(
    template: &str,
    vars: &BTreeMap<&'static str, &'static str>,
) -> Result<String, handlebars::RenderError> {
    let mut hb = handlebars::Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.render_template(template, vars)
}

impl Rule {
    fn compile(
        &self,
        label: &str,
        vars: &BTreeMap<&'static str, &'static str>,
    ) -> Result<CompiledRule, RuleError> {
        let label = format!("{label} (packages {:?})", self.packages);
        let render = |template: &str| {
            render(template, vars)
                .map_err(|e| (label.clone(), format!("template {template:?}: {e}")))
        };
        let chosen = [
            self.replace.is_some(),
            self.patch.is_some(),
            self.remove,
            self.add.is_some(),
            self.unsupported.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        let in_label = |message: &str| (label.clone(), message.to_string());
        if chosen != 1 {
            return Err(in_label(
                "needs exactly one of replace, patch, remove, add, unsupported",
            ));
        }
        let action = if let Some(r) = &self.replace {
            let path = r.path.as_deref().map(render).transpose()?;
            if let Some(m) = &r.tgz_member
                && (m.is_empty() || m.contains('/') || m == "." || m == "..")
            {
                return Err((
                    format!("{label}.replace.tgz_member"),
                    format!("{m:?} must be a plain file name (no `./`, no `/`)"),
                ));
            }
            Action::Replace(Replace {
                blob: r.blob.clone(),
                path,
                version_change: r.version_change.clone(),
                tgz_member: r.tgz_member.clone(),
            })
        } else if let Some(p) = &self.patch {
            let with = render(&p.with)?;
            let find = match (&p.literal, &p.regex) {
                (Some(l), None) => Find::Literal(render(l)?),
                (None, Some(r)) => {
                    let r = render(r)?;
                    Find::Regex(
                        regex::Regex::new(&r)
                            .map_err(|e| (format!("{label}.patch.regex"), e.to_string()))?,
                    )
                }
                _ => {
                    return Err((
                        format!("{label}.patch"),
                        "needs exactly one of literal, regex".into(),
                    ));
                }
            };
            Action::Patch {
                file: p.file.clone(),
                find,
                with,
            }
        } else if self.remove {
            Action::Remove
        } else if let Some(a) = &self.add {
            Action::Add(Add {
                path: render(&a.path)?,
                content: render(&a.content)?,
                executable: a.executable,
            })
        } else {
            Action::Unsupported(self.unsupported.clone().unwrap_or_default())
        };
        let needs_files = matches!(action, Action::Replace(_) | Action::Remove);
        if needs_files != self.files.is_some() {
            return Err(in_label(if needs_files {
                "replace and remove need `files`"
            } else {
                "`files` only applies to replace and remove"
            }));
        }
        Ok(CompiledRule {
            packages: glob(&label, "packages", &self.packages)?,
            files: self
                .files
                .as_deref()
                .map(|f| glob(&label, "files", f))
                .transpose()?,
            optional: self.optional,
            action,
            label,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
release: golang-release
target: armv6l
version_suffix: "+pi.armv6l"
rules:
- packages: golang-1*-linux
  files: "golang/go*.linux-amd64.tar.gz"
  replace: { blob: go1.26.7.linux-armv6l, path: "golang/go1.26.7.linux-{{arch}}.tar.gz" }
- packages: golang-1*-linux
  patch: { literal: linux-amd64, with: "linux-{{arch}}" }
"#;

    fn parse(text: &str) -> Result<(ReleaseRecipe, Vec<CompiledRule>), String> {
        ReleaseRecipe::parse(Path::new("recipe.yml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_and_renders_vars() {
        let (r, rules) = parse(OK).unwrap();
        assert_eq!(r.target, Arch::Armv6l);
        match &rules[0].action {
            Action::Replace(r) => {
                assert_eq!(
                    r.path.as_deref(),
                    Some("golang/go1.26.7.linux-armv6l.tar.gz")
                )
            }
            other => panic!("{other:?}"),
        }
        assert!(rules[1].packages.is_match("golang-1.25-linux"));
    }

    #[test]
    fn bad_recipes_name_the_key() {
        let e = parse(&OK.replace("target: armv6l", "target: armv6l\ncolour: red")).unwrap_err();
        assert!(e.contains("unknown field `colour`"), "{e}");
        let e =
            parse(&OK.replace("golang-1*-linux\n  patch", "golang-[-linux\n  patch")).unwrap_err();
        assert!(e.contains("rules[1]") && e.contains("bad glob"), "{e}");
        let e = parse(&OK.replace("target: armv6l", "target: riscv64")).unwrap_err();
        assert!(e.contains("target"), "{e}");
        let e = parse(&OK.replace("linux-{{arch}}.tar.gz", "linux-{{arhc}}.tar.gz")).unwrap_err();
        assert!(e.contains("rules[0]") && e.contains("arhc"), "{e}");
        let e = parse(&OK.replace("  patch: { literal", "  remove: true\n  patch: { literal"))
            .unwrap_err();
        assert!(e.contains("exactly one of"), "{e}");
    }
}
