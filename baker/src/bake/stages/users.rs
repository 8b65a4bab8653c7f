//! `users`: the groups and users BOSH expects (vcap uid 1000, bosh_sudoers, bosh_sshers,
//! admin, ...), created with the target's own shadow tools under qemu-user.

use pifoundry_util::name::NameRule;
use serde::{Deserialize, Serialize};

use super::{Ctx, FieldError, StageError, StageKind};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersStage {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<GroupEntry>,
    #[serde(default)]
    pub users: Vec<UserEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    pub name: String,
    #[serde(default)]
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub name: String,
    pub uid: u32,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default = "default_shell")]
    pub shell: String,
    #[serde(default)]
    pub home: Option<String>,
}

fn default_shell() -> String {
    "/bin/bash".into()
}

/// What the target's `useradd` and `groupadd` accept (Debian's default NAME_REGEX, without
/// upper case).
const ACCOUNT: NameRule = NameRule {
    what: "user or group name",
    max: 32,
    punct: "_-",
    alnum_first: false,
};

fn account(field: String, name: &str) -> Result<(), FieldError> {
    let starts_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
    match ACCOUNT.check(name) {
        Ok(()) if starts_ok && !name.contains(|c: char| c.is_ascii_uppercase()) => Ok(()),
        _ => Err(FieldError::new(
            field,
            format!("`{name}`"),
            "is not a user or group name (1-32 of a-z 0-9 _ -, starting with a letter or _)",
        )),
    }
}

impl StageKind for UsersStage {
    fn name(&self) -> &str {
        &self.name
    }

    fn validate(&self) -> Result<(), FieldError> {
        for (i, g) in self.groups.iter().enumerate() {
            account(format!("groups[{i}].name"), &g.name)?;
        }
        for (i, u) in self.users.iter().enumerate() {
            account(format!("users[{i}].name"), &u.name)?;
            for (j, g) in u.groups.iter().enumerate() {
                account(format!("users[{i}].groups[{j}]"), g)?;
            }
            super::absolute(&format!("users[{i}].shell"), std::path::Path::new(&u.shell))?;
            if let Some(home) = &u.home {
                super::absolute(&format!("users[{i}].home"), std::path::Path::new(home))?;
            }
        }
        Ok(())
    }

    fn run(&self, ctx: &mut Ctx<'_>) -> Result<(), StageError> {
        ctx.chroot(&script(self))
    }
}

fn script(s: &UsersStage) -> String {
    let mut sh = String::new();
    for g in &s.groups {
        let gid = g.gid.map(|g| format!("-g {g} ")).unwrap_or_default();
        sh += &format!(
            "getent group {n} >/dev/null || groupadd {gid}{n}\n",
            n = shell_word(&g.name)
        );
    }
    for u in &s.users {
        let groups = u
            .groups
            .iter()
            .map(|g| shell_word(g))
            .collect::<Vec<_>>()
            .join(",");
        let home = u
            .home
            .clone()
            .unwrap_or_else(|| format!("/home/{}", u.name));
        sh += &format!(
            "getent passwd {n} >/dev/null || useradd -m -u {uid} -U -s {shell} -d {home} {n}\n",
            n = shell_word(&u.name),
            uid = u.uid,
            shell = shell_word(&u.shell),
            home = shell_word(&home),
        );
        if !groups.is_empty() {
            sh += &format!("usermod -a -G {groups} {}\n", shell_word(&u.name));
        }
        sh += &format!(
            "test \"$(id -u {n})\" = {uid}\n",
            n = shell_word(&u.name),
            uid = u.uid
        );
    }
    sh
}

fn shell_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', r#"'\''"#))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_creates_groups_before_users_and_checks_uids() {
        let s = UsersStage {
            name: "users".into(),
            groups: vec![GroupEntry {
                name: "bosh_sudoers".into(),
                gid: None,
            }],
            users: vec![UserEntry {
                name: "vcap".into(),
                uid: 1000,
                groups: vec!["bosh_sudoers".into()],
                shell: "/bin/bash".into(),
                home: None,
            }],
        };
        let sh = script(&s);
        let g = sh.find("groupadd 'bosh_sudoers'").unwrap();
        let u = sh.find("useradd -m -u 1000").unwrap();
        assert!(g < u, "{sh}");
        assert!(sh.contains("usermod -a -G 'bosh_sudoers' 'vcap'"), "{sh}");
        assert!(sh.contains("test \"$(id -u 'vcap')\" = 1000"), "{sh}");
    }
}
