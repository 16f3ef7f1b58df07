//! S3 credentials, region and endpoint as the AWS CLI finds them.
//!
//! Static keys in the environment (`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, as on
//! Lambda and in the tests) keep object_store's own environment path. Without them, or when a
//! profile is named explicitly (`--profile`, [`StorageOptions::profile`]), credentials come from
//! aws-config: the shared config and credentials files (`AWS_CONFIG_FILE`,
//! `AWS_SHARED_CREDENTIALS_FILE`, `AWS_PROFILE`, `source_profile` / `role_arn`),
//! `credential_process`, SSO (from the SSO token cache), web identity, container and instance
//! credentials. They are resolved on the first request (no I/O when a store is built), cached,
//! and fetched again shortly before they expire.
//!
//! [`StorageOptions::profile`]: shoal_protocol::StorageOptions::profile

use aws_config::default_provider::credentials::DefaultCredentialsChain;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_runtime::env_config::EnvConfigValue;
use aws_runtime::env_config::file::EnvConfigFiles;
use aws_types::os_shim_internal::{Env, Fs};
use aws_types::region::Region;
use object_store::aws::AwsCredential;
use object_store::client::CredentialProvider;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{Mutex, OnceCell};

/// Credentials are fetched again this long before they expire (or at half their remaining
/// lifetime, if that is shorter).
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

/// Whether the environment holds static keys (object_store's own path reads them).
pub(crate) fn static_keys_in_env() -> bool {
    let set = |name| std::env::var(name).is_ok_and(|v| !v.is_empty());
    set("AWS_ACCESS_KEY_ID") && set("AWS_SECRET_ACCESS_KEY")
}

/// What the selected profile of the shared config files says about S3.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ProfileSettings {
    /// `region = ...`
    pub region: Option<String>,
    /// `endpoint_url = ...`, or `endpoint_url` under the profile's `services` section for `s3`.
    pub endpoint: Option<String>,
}

/// Reads the selected profile (`profile`, else `AWS_PROFILE`, else `default`) from the shared
/// config and credentials files. Missing or unreadable files give no settings: aws-config reports
/// them when credentials are resolved.
pub(crate) fn profile_settings(profile: Option<&str>) -> ProfileSettings {
    settings_in(&Fs::real(), &Env::real(), profile)
}

fn settings_in(fs: &Fs, env: &Env, profile: Option<&str>) -> ProfileSettings {
    let selected = profile.map(|p| Cow::Owned(p.to_string()));
    // The real file system is read synchronously inside this future (aws-config reads the
    // profile files with std::fs), so it completes at once, without a runtime.
    let files = EnvConfigFiles::default();
    let load = aws_config::profile::load(fs, env, &files, selected);
    let Ok(profiles) = futures::executor::block_on(load) else {
        return ProfileSettings::default();
    };
    let region = profiles.get("region").map(str::to_string);
    let is_true = |v: &str| v.trim().eq_ignore_ascii_case("true");
    let ignore_endpoints = env.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS").is_ok_and(|v| is_true(&v))
        || profiles.get("ignore_configured_endpoint_urls").is_some_and(is_true);
    if ignore_endpoints {
        return ProfileSettings { region, endpoint: None };
    }
    // `services` section for s3 first, then the profile's own `endpoint_url`.
    let endpoint = EnvConfigValue::new()
        .profile("endpoint_url")
        .service_id("s3")
        .load(env, Some(&profiles))
        .map(|(value, _)| value.into_owned());
    ProfileSettings { region, endpoint }
}

/// Where the credential search looks, for the error that says nothing was found (`everywhere`),
/// or just the profile it selected.
fn places_searched(profile: Option<&str>, everywhere: bool) -> String {
    let env_profile = std::env::var("AWS_PROFILE").ok().filter(|p| !p.is_empty());
    let (name, how) = match (profile, env_profile) {
        (Some(p), _) => (p.to_string(), " (--profile)"),
        (None, Some(p)) => (p, " (AWS_PROFILE)"),
        (None, None) => ("default".to_string(), ""),
    };
    let file = |var: &str, default: &str| match std::env::var(var) {
        Ok(path) if !path.is_empty() => format!("{path} ({var})"),
        _ => default.to_string(),
    };
    let config = file("AWS_CONFIG_FILE", "~/.aws/config");
    let credentials = file("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials");
    let found = if profile_defined(&Fs::real(), &Env::real(), &name) {
        "keys, credential_process, SSO or role_arn"
    } else {
        "neither defines it"
    };
    let profile_part = format!("profile '{name}'{how} in {credentials} and {config} ({found})");
    if profile.is_some() || !everywhere {
        return profile_part;
    }
    let imds = if std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true")) {
        "EC2 instance metadata (disabled by AWS_EC2_METADATA_DISABLED)"
    } else {
        "EC2 instance metadata"
    };
    format!(
        "environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), {profile_part}, web identity \
         (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN), container credentials \
         (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI / _FULL_URI), {imds}"
    )
}

/// Whether the shared config or credentials file has a profile of this name.
fn profile_defined(fs: &Fs, env: &Env, name: &str) -> bool {
    let files = EnvConfigFiles::default();
    let load = aws_config::profile::load(fs, env, &files, None);
    futures::executor::block_on(load).is_ok_and(|profiles| profiles.get_profile(name).is_some())
}

/// Why a bucket's credentials could not be had.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CredentialsUnavailable(String);

#[derive(Debug)]
struct Cached {
    credential: Arc<AwsCredential>,
    refresh_at: Option<SystemTime>,
}

/// The aws-config credential source of one `Storage`, shared by its
/// buckets: built on first use, its credentials cached until shortly before they expire.
#[derive(Debug)]
pub(crate) struct AwsConfigCredentials {
    profile: Option<String>,
    region: String,
    provider: OnceCell<SharedCredentialsProvider>,
    cached: Mutex<Option<Cached>>,
}

impl AwsConfigCredentials {
    /// `profile` set: that profile only (as `aws --profile`); else aws-config's default chain.
    /// `region` is the region STS, SSO and the rest are asked in when a profile names none.
    pub(crate) fn new(profile: Option<String>, region: String) -> Self {
        Self { profile, region, provider: OnceCell::new(), cached: Mutex::new(None) }
    }

    /// Credentials from a given aws-config provider (tests: a profile in files of their own).
    #[cfg(test)]
    fn with_provider(profile: Option<String>, provider: SharedCredentialsProvider) -> Self {
        let region = "us-east-1".to_string();
        Self { profile, region, provider: OnceCell::from(provider), cached: Mutex::new(None) }
    }

    async fn provider(&self) -> &SharedCredentialsProvider {
        self.provider
            .get_or_init(|| async {
                let region = Region::new(self.region.clone());
                match &self.profile {
                    Some(name) => {
                        let conf = ProviderConfig::default().with_region(Some(region));
                        let provider = ProfileFileCredentialsProvider::builder()
                            .configure(&conf)
                            .profile_name(name)
                            .build();
                        SharedCredentialsProvider::new(provider)
                    }
                    None => SharedCredentialsProvider::new(
                        DefaultCredentialsChain::builder().region(region).build().await,
                    ),
                }
            })
            .await
    }

    /// Current credentials for a request to `bucket`: cached ones while they are fresh.
    async fn credential(&self, bucket: &str) -> object_store::Result<Arc<AwsCredential>> {
        // One caller at a time refreshes; the others wait for its result.
        let mut cached = self.cached.lock().await;
        let now = SystemTime::now();
        if let Some(c) = cached.as_ref()
            && c.refresh_at.is_none_or(|at| now < at)
        {
            return Ok(c.credential.clone());
        }
        let creds = self.provider().await.provide_credentials().await.map_err(|e| self.error(bucket, e))?;
        let credential = Arc::new(AwsCredential {
            key_id: creds.access_key_id().to_string(),
            secret_key: creds.secret_access_key().to_string(),
            token: creds.session_token().map(str::to_string),
        });
        let refresh_at = creds.expiry().map(|expiry| {
            let left = expiry.duration_since(now).unwrap_or_default();
            now + left - REFRESH_BEFORE_EXPIRY.min(left / 2)
        });
        *cached = Some(Cached { credential: credential.clone(), refresh_at });
        Ok(credential)
    }

    fn error(&self, bucket: &str, e: CredentialsError) -> object_store::Error {
        let path = format!("s3://{bucket}");
        let searched = places_searched(self.profile.as_deref(), true);
        let selected = places_searched(self.profile.as_deref(), false);
        match &e {
            // aws-config's own account of the chain says what `searched` says, less plainly.
            CredentialsError::CredentialsNotLoaded(_) => object_store::Error::Unauthenticated {
                source: Box::new(CredentialsUnavailable(format!(
                    "unable to locate AWS credentials for {path}: looked in {searched}. \
                     Run `aws configure` or `aws sso login`, name a profile with --profile or AWS_PROFILE, \
                     or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                ))),
                path,
            },
            CredentialsError::InvalidConfiguration(_) | CredentialsError::ProviderError(_) => {
                let detail = error_chain(&e);
                object_store::Error::Unauthenticated {
                    source: Box::new(CredentialsUnavailable(format!(
                        "AWS credentials for {path} could not be loaded: {detail} (selected {selected})"
                    ))),
                    path,
                }
            }
            // A timeout or an unexpected answer may pass: retryable.
            _ => object_store::Error::Generic {
                store: "S3",
                source: Box::new(CredentialsUnavailable(format!(
                    "AWS credentials for {path} could not be loaded: {} (selected {selected})",
                    error_chain(&e)
                ))),
            },
        }
    }
}

/// An error and its causes, `: `-separated, each cause once.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string();
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

/// One bucket's view of a `Storage`'s credentials (its name goes in
/// the errors).
#[derive(Debug)]
pub(crate) struct BucketCredentials {
    pub bucket: String,
    pub source: Arc<AwsConfigCredentials>,
}

#[async_trait::async_trait]
impl CredentialProvider for BucketCredentials {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        self.source.credential(&self.bucket).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_runtime::env_config::file::EnvConfigFileKind;

    #[test]
    fn causes_are_joined_once() {
        let e = CredentialsError::not_loaded("no profile");
        let text = error_chain(&e);
        assert!(text.contains("no profile"), "{text}");
        assert_eq!(text.matches("no profile").count(), 1, "{text}");
    }

    #[test]
    fn a_named_profile_is_the_only_place_searched() {
        let text = places_searched(Some("dev"), true);
        assert!(text.contains("profile 'dev' (--profile)"), "{text}");
        assert!(!text.contains("instance metadata"), "{text}");
    }

    const CONFIG: &str = "[default]\nregion = us-west-1\n\n\
        [profile dev]\nregion = eu-west-2\nendpoint_url = http://127.0.0.1:4566\n\n\
        [profile svc]\nservices = local\nendpoint_url = http://127.0.0.1:1\n\n\
        [profile off]\nendpoint_url = http://127.0.0.1:1\nignore_configured_endpoint_urls = true\n\n\
        [services local]\ns3 =\n  endpoint_url = http://127.0.0.1:9000\n";

    fn settings(env: &[(&str, &str)], profile: Option<&str>) -> ProfileSettings {
        let fs = Fs::from_slice(&[("/cfg/config", CONFIG)]);
        let mut vars = vec![("AWS_CONFIG_FILE", "/cfg/config"), ("HOME", "/nowhere")];
        vars.extend_from_slice(env);
        settings_in(&fs, &Env::from_slice(&vars), profile)
    }

    #[test]
    fn defined_profiles_are_known() {
        let fs = Fs::from_slice(&[("/cfg/config", CONFIG)]);
        let env = Env::from_slice(&[("AWS_CONFIG_FILE", "/cfg/config"), ("HOME", "/nowhere")]);
        assert!(profile_defined(&fs, &env, "dev"));
        assert!(profile_defined(&fs, &env, "default"));
        assert!(!profile_defined(&fs, &env, "nope"));
    }

    #[test]
    fn region_and_endpoint_come_from_the_selected_profile() {
        let default = settings(&[], None);
        assert_eq!(default, ProfileSettings { region: Some("us-west-1".into()), endpoint: None });
        let dev = ProfileSettings {
            region: Some("eu-west-2".into()),
            endpoint: Some("http://127.0.0.1:4566".into()),
        };
        assert_eq!(settings(&[("AWS_PROFILE", "dev")], None), dev);
        // A named profile wins over AWS_PROFILE.
        assert_eq!(settings(&[("AWS_PROFILE", "svc")], Some("dev")), dev);
        // The s3 entry of the profile's `services` section wins over its own endpoint_url.
        assert_eq!(settings(&[], Some("svc")).endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(settings(&[], Some("off")).endpoint, None);
        assert_eq!(settings(&[("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")], Some("dev")).endpoint, None);
        // A profile that does not exist says nothing.
        assert_eq!(settings(&[], Some("nope")), ProfileSettings::default());
    }

    /// A real `credential_process` (a shell script counting its runs) whose credentials expire
    /// 4 s after they are issued: cached at first, fetched again once within 2 s of expiry.
    #[tokio::test]
    async fn expiring_credentials_are_cached_then_refreshed() {
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("calls");
        let script = dir.path().join("creds.sh");
        let body = format!(
            "#!/bin/sh\necho run >> '{}'\nn=$(wc -l < '{}' | tr -d ' ')\n\
             printf '{{\"Version\":1,\"AccessKeyId\":\"AKID%s\",\"SecretAccessKey\":\"s\",\
             \"SessionToken\":\"t\",\"Expiration\":\"%s\"}}' \"$n\" \"$(date -u -d '+4 seconds' +%Y-%m-%dT%H:%M:%SZ)\"\n",
            calls.display(),
            calls.display()
        );
        std::fs::write(&script, body).unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, format!("[profile proc]\ncredential_process = sh {}\n", script.display()))
            .unwrap();
        let files = EnvConfigFiles::builder()
            .include_default_config_file(false)
            .include_default_credentials_file(false)
            .with_file(EnvConfigFileKind::Config, &config)
            .build();
        let provider =
            ProfileFileCredentialsProvider::builder().profile_files(files).profile_name("proc").build();
        let source = AwsConfigCredentials::with_provider(
            Some("proc".into()),
            SharedCredentialsProvider::new(provider),
        );
        let runs = || std::fs::read_to_string(&calls).unwrap_or_default().lines().count();
        let first = source.credential("b").await.unwrap();
        assert_eq!(first.key_id, "AKID1");
        assert_eq!(first.token.as_deref(), Some("t"));
        assert_eq!(source.credential("b").await.unwrap().key_id, "AKID1");
        assert_eq!(runs(), 1, "fresh credentials are cached");
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert_eq!(source.credential("b").await.unwrap().key_id, "AKID2", "refreshed before expiry");
        assert_eq!(runs(), 2);
    }
}
