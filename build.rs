//! Build facts for `--version` and `crowdpark_build_info`: the git revision
//! (`CROWDPARK_GIT_REVISION` where there is no repository, as in a container
//! build, else `unknown`) and the build date (UTC, or `SOURCE_DATE_EPOCH`'s
//! for a reproducible build).

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn main() {
    println!("cargo:rerun-if-env-changed=CROWDPARK_GIT_REVISION");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // A new commit changes the revision: watch what HEAD points to. Git
    // says where HEAD and the refs are: in a worktree `.git` is a file, and
    // HEAD lives in the worktree's own directory, the refs in the common one.
    if let (Some(dir), Some(common)) = (git(&["--git-dir"]), git(&["--git-common-dir"])) {
        let (dir, common) = (Path::new(&dir), Path::new(&common));
        if let Ok(head) = std::fs::read_to_string(dir.join("HEAD")) {
            println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
            if let Some(branch) = head.strip_prefix("ref: ") {
                for path in [common.join(branch.trim()), common.join("packed-refs")] {
                    if path.exists() {
                        println!("cargo:rerun-if-changed={}", path.display());
                    }
                }
            }
        }
    }
    let revision = std::env::var("CROWDPARK_GIT_REVISION")
        .ok()
        .filter(|r| !r.trim().is_empty())
        .or_else(git_revision)
        .unwrap_or_else(|| "unknown".into());
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or_else(|| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH);
            now.map_or(0, |d| d.as_secs())
        });
    println!("cargo:rustc-env=CROWDPARK_REVISION={}", revision.trim());
    println!(
        "cargo:rustc-env=CROWDPARK_BUILD_DATE={}",
        civil_date(secs / 86_400)
    );
}

fn git_revision() -> Option<String> {
    git(&["--short=12", "HEAD"])
}

/// `git rev-parse <args>`, if there is a repository and git.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("rev-parse")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Days since 1970-01-01 as `YYYY-MM-DD` (Howard Hinnant's civil_from_days).
fn civil_date(days: u64) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
