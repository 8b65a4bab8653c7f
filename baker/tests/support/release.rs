//! bosh-cli's reference releases (`shared/bosh-vectors`) and releases built from them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baker::release::writer::{self, Parts};
use baker::release::{self, Manifest};

/// `shared/bosh-vectors`: `$PIFOUNDRY_VECTORS`, else `shared/bosh-vectors` beside the
/// checkout or beside any of its ancestors (CI puts shared/ next to the repo).
pub fn vectors() -> PathBuf {
    if let Some(p) = std::env::var_os("PIFOUNDRY_VECTORS") {
        return PathBuf::from(p);
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    repo.ancestors()
        .map(|a| a.join("shared/bosh-vectors"))
        .find(|p| p.join("sample-release.tgz").is_file())
        .expect("bosh vectors not found: set PIFOUNDRY_VECTORS or put shared/ beside the checkout")
}

pub fn sample() -> PathBuf {
    vectors().join("sample-release.tgz")
}

pub fn sample_sha1() -> PathBuf {
    vectors().join("sample-release-sha1.tgz")
}

/// The contents of a release, spooled so that tests can rebuild altered tarballs.
pub struct Unpacked {
    pub dir: tempfile::TempDir,
    pub manifest: Manifest,
    pub archives: BTreeMap<String, PathBuf>,
    pub top_files: Vec<(String, Vec<u8>)>,
}

pub fn unpack(path: &Path) -> Unpacked {
    let dir = tempfile::tempdir().unwrap();
    let rel = release::read(path, Some(&dir.path().join("spool"))).unwrap();
    let archives = rel.spooled().unwrap();
    Unpacked {
        dir,
        manifest: rel.manifest,
        archives,
        top_files: rel.top_files,
    }
}

impl Unpacked {
    pub fn write(&self, name: &str) -> PathBuf {
        let out = self.dir.path().join(name);
        let parts = Parts {
            manifest: &self.manifest,
            archives: &self.archives,
            top_files: &self.top_files,
        };
        let f = std::fs::File::create(&out).unwrap();
        writer::write(f, &parts, flate2::Compression::default()).unwrap();
        out
    }
}

/// A package for [`build_release`]: name, dependencies, files (path, content, executable).
pub struct Pkg<'a> {
    pub name: &'a str,
    pub deps: &'a [&'a str],
    pub files: Vec<(&'a str, Vec<u8>, bool)>,
}

/// Builds a small source release the way bosh-cli lays it out, with SHA-256-era
/// fingerprints and digests, and one job using the first package.
pub fn build_release(dir: &Path, name: &str, version: &str, pkgs: &[Pkg<'_>]) -> PathBuf {
    use baker::archive::Mode;
    use baker::release::digest::Algo;
    use baker::release::fingerprint::{Era, Resource, fingerprint};
    use baker::release::manifest::{Job, Package};
    use baker::release::writer::{Content, InnerFile, build_inner};

    let work = dir.join(format!("{name}-parts"));
    std::fs::create_dir_all(&work).unwrap();
    let mut archives = BTreeMap::new();
    let mut packages = Vec::new();
    for p in pkgs {
        let files = p
            .files
            .iter()
            .map(|(n, c, x)| InnerFile {
                name: n.to_string(),
                mode: if *x { Mode::Executable } else { Mode::Regular },
                content: Content::Bytes(c.clone()),
            })
            .collect();
        let dest = work.join(format!("{}.tgz", p.name));
        let built = build_inner(&dest, files, &[Algo::Sha256]).unwrap();
        let deps: Vec<String> = p.deps.iter().map(|d| d.to_string()).collect();
        let fp = fingerprint(
            Era::Sha256,
            &Resource::Package {
                dependencies: &deps,
            },
            &built.files,
        )
        .unwrap();
        packages.push(Package {
            name: p.name.into(),
            version: fp.clone(),
            fingerprint: fp,
            sha1: format!("sha256:{}", built.digests.get(Algo::Sha256).unwrap()),
            dependencies: deps,
            ..Package::default()
        });
        archives.insert(format!("packages/{}.tgz", p.name), dest);
    }
    let job_files = vec![
        InnerFile {
            name: "job.MF".into(),
            mode: Mode::Regular,
            content: Content::Bytes(
                format!("name: j\npackages: [{}]\n", pkgs[0].name).into_bytes(),
            ),
        },
        InnerFile {
            name: "monit".into(),
            mode: Mode::Regular,
            content: Content::Bytes(b"".to_vec()),
        },
    ];
    let dest = work.join("j.tgz");
    let built = build_inner(&dest, job_files, &[Algo::Sha256]).unwrap();
    let fp = fingerprint(Era::Sha256, &Resource::Job, &built.files).unwrap();
    archives.insert("jobs/j.tgz".into(), dest);
    let manifest = Manifest {
        name: name.into(),
        version: version.into(),
        commit_hash: "abc1234".into(),
        jobs: vec![Job {
            name: "j".into(),
            version: fp.clone(),
            fingerprint: fp,
            sha1: format!("sha256:{}", built.digests.get(Algo::Sha256).unwrap()),
            packages: vec![pkgs[0].name.into()],
            ..Job::default()
        }],
        packages,
        ..Manifest::default()
    };
    let out = dir.join(format!("{name}-{version}.tgz"));
    let parts = Parts {
        manifest: &manifest,
        archives: &archives,
        top_files: &[],
    };
    writer::write(
        std::fs::File::create(&out).unwrap(),
        &parts,
        flate2::Compression::default(),
    )
    .unwrap();
    out
}

/// The sample release as a pre-v5.5.0 bosh-cli would have fingerprinted it: SHA-1 over bare
/// hex SHA-1 file digests (40-hex fingerprints).
pub fn sha1_era_release(u: &Unpacked) -> PathBuf {
    use baker::release::digest::Algo;
    use baker::release::fingerprint::{Era, fingerprint};
    let mut m = u.manifest.clone();
    let mut fps = Vec::new();
    for e in release::entries(&u.manifest) {
        let f = std::io::BufReader::new(std::fs::File::open(&u.archives[&e.archive]).unwrap());
        let files = release::reader::summarize_files(&e.archive, f, &[Algo::Sha1]).unwrap();
        let fp = fingerprint(Era::Sha1, e.resource.as_ref().unwrap(), &files).unwrap();
        assert_eq!(fp.len(), 40);
        fps.push(fp);
    }
    m.jobs[0].fingerprint = fps[0].clone();
    m.packages[0].fingerprint = fps[1].clone();
    m.packages[1].fingerprint = fps[2].clone();
    m.license.as_mut().unwrap().fingerprint = fps[3].clone();
    let out = u.dir.path().join("sha1-era.tgz");
    let parts = Parts {
        manifest: &m,
        archives: &u.archives,
        top_files: &u.top_files,
    };
    writer::write(
        std::fs::File::create(&out).unwrap(),
        &parts,
        flate2::Compression::default(),
    )
    .unwrap();
    out
}
