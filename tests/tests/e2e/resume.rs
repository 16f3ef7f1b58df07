//! Resume: the coordinator is killed (SIGKILL) mid-job; running the same job again with the same
//! job root runs only the uncommitted tasks, and the committed output is byte-identical to an
//! uninterrupted run's.

use crate::cli::shoal;
use shoal_tests::data::{trips_batch, write_csv};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PARTS: usize = 12;

fn job(dir: &Path, out: &str) {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    for i in 0..PARTS {
        write_csv(
            &dir.join(format!("in/part-{i:02}.csv")),
            &trips_batch(i as i64 * 100, 100, i as u64).unwrap(),
        )
        .unwrap();
    }
    let toml = format!(
        "[datasets.trips]\nread_csv = \"in/*.csv\"\n\
         [datasets.slow]\nfrom = \"trips\"\nmap_partitions = {{ module = \"builtin:testing\", function = \"slow\", args = {{ ms = 300 }} }}\n\
         [datasets.result]\nfrom = \"slow\"\nassign = {{ fare2 = \"fare * 2\" }}\n\
         [[outputs]]\ndataset = \"result\"\nto_parquet = \"{out}\"\n"
    );
    std::fs::write(dir.join("job.toml"), toml).unwrap();
}

/// The manifests under `commits/`. A coordinator killed mid-commit can leave the local store's
/// staging file (`<key>.json#<n>`) beside them; that is not a commit, and `status` does not count it.
fn committed(root: &Path) -> usize {
    std::fs::read_dir(root.join("commits"))
        .map(|d| {
            d.filter_map(Result::ok).filter(|e| e.path().extension().is_some_and(|x| x == "json")).count()
        })
        .unwrap_or(0)
}

/// The Parquet parts in `dir`, by name, with their bytes.
pub(crate) fn parts(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn a_killed_job_resumes_with_only_the_missing_tasks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    job(dir, "out");

    // Start the job and SIGKILL the coordinator once a few tasks have committed.
    let mut child = Command::new(crate::cli::shoal_bin())
        .args(["run", "job.toml", "--root", "root", "--executor", "sync"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while committed(&dir.join("root")) < 3 {
        assert!(started.elapsed() < Duration::from_secs(120), "no task committed in time");
        assert!(child.try_wait().unwrap().is_none(), "the job ended before it was killed");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let done = committed(&dir.join("root"));
    assert!((3..PARTS).contains(&done), "killed mid-job: {done} of {PARTS} committed");
    assert!(!dir.join("out/_SUCCESS").exists(), "an interrupted job has no _SUCCESS");

    let status = shoal(&["status", "root"], dir);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(&format!("{done}/{PARTS} tasks committed (incomplete)")), "{text}");

    // Running it again runs only what is missing.
    let again = shoal(&["run", "job.toml", "--root", "root", "--executor", "sync"], dir);
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{stderr}");
    assert!(stderr.contains(&format!("resuming: {done} of {PARTS} tasks already committed")), "{stderr}");
    assert!(stderr.contains(&format!("({} tasks run, {done} reused", PARTS - done)), "{stderr}");
    let status = shoal(&["status", "root"], dir);
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .contains(&format!("{PARTS}/{PARTS} tasks committed (complete)"))
    );

    // Byte-identical to an uninterrupted run of the same job in a fresh folder and root.
    let resumed = parts(&dir.join("out"));
    assert_eq!(resumed.len(), PARTS);
    job(&dir.join("b"), "out");
    let b = shoal(&["run", "job.toml", "--root", "root"], &dir.join("b"));
    assert!(b.status.success());
    assert_eq!(parts(&dir.join("b/out")), resumed, "resumed output is byte-identical to a clean run");
}
