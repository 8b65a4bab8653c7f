//! `users`: the groups and users BOSH expects (vcap uid 1000, bosh_sudoers, bosh_sshers,
//! admin, ...), created with the target's own shadow tools under qemu-user.

use crate::bake::{BakeError, Ctx, chroot};
use crate::recipe::stemcell::UsersStage;

pub fn run(s: &UsersStage, ctx: &mut Ctx) -> Result<(), BakeError> {
    chroot::run(
        ctx.rootfs,
        ctx.recipe.arch,
        ctx.recipe.source_date_epoch(),
        &script(s),
        &ctx.log,
    )
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
    use crate::recipe::stemcell::{GroupEntry, UserEntry};

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
