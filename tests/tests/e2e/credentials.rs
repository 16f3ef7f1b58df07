//! S3 credentials as the AWS CLI finds them, through the real `shoal` CLI and a real LocalStack:
//! a static profile named by `AWS_PROFILE` or `--profile` (with its endpoint and region from the
//! config file), a `credential_process` profile, and no credentials at all (one clear error).
//!
//! Every run clears the child's environment, so only the files written here can supply
//! credentials; instance metadata is switched off (`AWS_EC2_METADATA_DISABLED`) so nothing leaves
//! loopback. SSO needs an SSO portal, which LocalStack does not have: it is not tested here.

use crate::cli::shoal_bin;
use shoal_tests::localstack::LocalStack;
use shoal_worker::io::storage::Storage;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ROWS: usize = 50;

/// A job reading a local CSV and writing Parquet to `s3://{bucket}/out`.
fn write_job(dir: &Path, bucket: &str) {
    std::fs::create_dir_all(dir.join("input")).unwrap();
    let mut csv = String::from("id,name\n");
    for i in 0..ROWS {
        csv.push_str(&format!("{i},n{i}\n"));
    }
    std::fs::write(dir.join("input/data.csv"), csv).unwrap();
    let job = format!(
        "[datasets.nums]\nread_csv = \"input/*.csv\"\n\n[[outputs]]\ndataset = \"nums\"\nto_parquet = \"s3://{bucket}/out\"\n"
    );
    std::fs::write(dir.join("job.toml"), job).unwrap();
}

/// The shared config and credentials files of one test, under `dir/aws`.
struct AwsFiles {
    home: PathBuf,
    config: PathBuf,
    credentials: PathBuf,
}

fn aws_files(dir: &Path, config: &str, credentials: &str) -> AwsFiles {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(dir.join("aws")).unwrap();
    let files = AwsFiles { home, config: dir.join("aws/config"), credentials: dir.join("aws/credentials") };
    std::fs::write(&files.config, config).unwrap();
    std::fs::write(&files.credentials, credentials).unwrap();
    files
}

/// Runs the CLI in `dir` with nothing of the test's environment but `PATH` and `extra`.
fn run_shoal(dir: &Path, files: &AwsFiles, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(shoal_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &files.home)
        .env("AWS_CONFIG_FILE", &files.config)
        .env("AWS_SHARED_CREDENTIALS_FILE", &files.credentials)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(extra.iter().copied())
        .args(args)
        .current_dir(dir);
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Rows of the Parquet parts under `s3://{bucket}/out`, read back with the tests' own
/// (environment) credentials; `_SUCCESS` must be there.
async fn rows_written(ls: &LocalStack, bucket: &str) -> usize {
    let storage = Storage::new(ls.storage_options());
    storage.head(&format!("s3://{bucket}/out/_SUCCESS")).await.expect("_SUCCESS written");
    let mut rows = 0;
    for part in storage.list(&format!("s3://{bucket}/out")).await.unwrap() {
        let bytes = storage.get(&part).await.unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap();
        rows += reader.map(|b| b.unwrap().num_rows()).sum::<usize>();
    }
    rows
}

/// Every object in a bucket (read with the tests' environment credentials).
async fn objects_in(ls: &LocalStack, bucket: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let location = Storage::new(ls.storage_options()).resolve(&format!("s3://{bucket}/")).unwrap();
    let objects: Vec<_> = location.store.list(None).try_collect().await.unwrap();
    objects.into_iter().map(|meta| meta.location.to_string()).collect()
}

fn static_profile(name: &str, ls: &LocalStack) -> (String, String) {
    let section = if name == "default" { "default".to_string() } else { format!("profile {name}") };
    (
        format!("[{section}]\nregion = us-east-1\nendpoint_url = {}\n", ls.endpoint),
        format!("[{name}]\naws_access_key_id = AKIDSTATIC\naws_secret_access_key = secret\n"),
    )
}

/// `AWS_PROFILE=static`: keys from the credentials file, endpoint and region from the config
/// file (no `--endpoint`, no `AWS_REGION`).
#[tokio::test(flavor = "multi_thread")]
async fn a_profile_named_by_aws_profile_supplies_keys_endpoint_and_region() {
    shoal_tests::init_test_env();
    let ls = LocalStack::start().unwrap();
    ls.create_bucket("creds-env-profile").unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_job(dir.path(), "creds-env-profile");
    let (config, credentials) = static_profile("static", &ls);
    let files = aws_files(dir.path(), &config, &credentials);
    let out = run_shoal(dir.path(), &files, &["run", "job.toml"], &[("AWS_PROFILE", "static")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(rows_written(&ls, "creds-env-profile").await, ROWS);
}

/// `--profile other` on the command line reaches the worker processes too (through the task's
/// storage options); `AWS_PROFILE` names a profile that does not exist and is overridden.
#[tokio::test(flavor = "multi_thread")]
async fn the_profile_flag_names_the_profile_for_the_run_and_its_workers() {
    shoal_tests::init_test_env();
    let ls = LocalStack::start().unwrap();
    ls.create_bucket("creds-flag").unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_job(dir.path(), "creds-flag");
    let (config, credentials) = static_profile("other", &ls);
    let files = aws_files(dir.path(), &config, &credentials);
    let args = ["run", "job.toml", "--profile", "other", "--executor", "processes", "--workers", "2"];
    let out = run_shoal(dir.path(), &files, &args, &[("AWS_PROFILE", "no-such-profile")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(rows_written(&ls, "creds-flag").await, ROWS);
}

/// A `credential_process` profile: the command really runs (it logs each run) and its
/// temporary credentials sign the requests.
#[tokio::test(flavor = "multi_thread")]
async fn credential_process_supplies_expiring_credentials() {
    shoal_tests::init_test_env();
    let ls = LocalStack::start().unwrap();
    ls.create_bucket("creds-process").unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_job(dir.path(), "creds-process");
    let calls = dir.path().join("calls.log");
    let script = dir.path().join("creds.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$$\" >> '{}'\nprintf '{{\"Version\":1,\"AccessKeyId\":\"AKIDPROCESS\",\
             \"SecretAccessKey\":\"secret\",\"SessionToken\":\"token\",\"Expiration\":\"%s\"}}' \
             \"$(date -u -d '+1 hour' +%Y-%m-%dT%H:%M:%SZ)\"\n",
            calls.display()
        ),
    )
    .unwrap();
    let config = format!(
        "[profile proc]\nregion = us-east-1\nendpoint_url = {}\ncredential_process = sh {}\n",
        ls.endpoint,
        script.display()
    );
    let files = aws_files(dir.path(), &config, "");
    let out = run_shoal(dir.path(), &files, &["run", "job.toml"], &[("AWS_PROFILE", "proc")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(rows_written(&ls, "creds-process").await, ROWS);
    let runs = std::fs::read_to_string(&calls).unwrap_or_default().lines().count();
    assert!(runs >= 1, "credential_process never ran");
    // Cached for the hour they are valid: not once per request (the job makes several).
    assert!(runs <= 2, "credential_process ran {runs} times");

    // The same profile whose command fails: the run fails naming the bucket and the command's
    // complaint, and writes nothing.
    let failing = dir.path().join("failing.sh");
    std::fs::write(&failing, "#!/bin/sh\necho 'session expired, log in again' >&2\nexit 3\n").unwrap();
    let config = config.replace(&script.display().to_string(), &failing.display().to_string());
    std::fs::write(&files.config, config).unwrap();
    ls.create_bucket("creds-process-fail").unwrap();
    let again = tempfile::tempdir().unwrap();
    write_job(again.path(), "creds-process-fail");
    let out = run_shoal(again.path(), &files, &["run", "job.toml"], &[("AWS_PROFILE", "proc")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(err.contains("s3://creds-process-fail") && err.contains("session expired"), "{}", text(&out));
    assert!(err.contains("profile 'proc' (AWS_PROFILE)"), "{}", text(&out));
    assert_eq!(objects_in(&ls, "creds-process-fail").await, Vec::<String>::new(), "nothing written");
}

/// No keys anywhere: the run fails with one error that names the bucket and every place
/// searched, and writes nothing. A profile that does not exist is named in its error.
#[tokio::test(flavor = "multi_thread")]
async fn no_credentials_is_one_clear_error_and_nothing_is_written() {
    shoal_tests::init_test_env();
    let ls = LocalStack::start().unwrap();
    ls.create_bucket("creds-none").unwrap();
    let dir = tempfile::tempdir().unwrap();
    write_job(dir.path(), "creds-none");
    let files = aws_files(dir.path(), "", "");
    let args = ["run", "job.toml", "--endpoint", &ls.endpoint];
    let out = run_shoal(dir.path(), &files, &args, &[("AWS_REGION", "us-east-1")]);
    let all = text(&out);
    assert!(!out.status.success(), "{all}");
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "unable to locate AWS credentials for s3://creds-none",
        "AWS_ACCESS_KEY_ID",
        "profile 'default' in",
        &files.config.display().to_string(),
        &files.credentials.display().to_string(),
        "web identity",
        "container credentials",
        "instance metadata",
    ] {
        assert!(err.contains(needle), "missing '{needle}' in:\n{all}");
    }
    assert_eq!(objects_in(&ls, "creds-none").await, Vec::<String>::new(), "nothing written");

    let args = ["run", "job.toml", "--endpoint", &ls.endpoint, "--profile", "nowhere"];
    let out = run_shoal(dir.path(), &files, &args, &[("AWS_REGION", "us-east-1")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(err.contains("profile 'nowhere' (--profile)"), "{}", text(&out));
    assert!(err.contains("neither defines it") && err.contains("s3://creds-none"), "{}", text(&out));
    assert_eq!(objects_in(&ls, "creds-none").await, Vec::<String>::new(), "nothing written");
}
