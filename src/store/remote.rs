//! Opening a store in object storage from its URL: `s3://bucket/prefix` (S3 or any
//! S3-compatible server, with `--endpoint`) or `https://host/path` (read-only, plain HTTP
//! GETs). Credentials come from the usual AWS environment variables, then from the shared
//! credentials and config files (`AWS_PROFILE`, else `default`); they are never printed.

use super::disk_cache::DiskCache;
use super::metered::{Counters, MeteredConnector};
use super::object::{ObjectStore, RemoteOptions};
use super::runtime::Runtime;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::http::HttpBuilder;
use object_store::limit::LimitStore;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where a remote store is and how to reach it.
#[derive(Debug, Clone)]
pub struct Location {
    /// The store's URL (`s3://bucket/prefix`, `https://…`).
    pub url: String,
    /// An S3-compatible endpoint instead of AWS (`http://127.0.0.1:8333`).
    pub endpoint: Option<String>,
    /// The bucket's region.
    pub region: Option<String>,
    /// Send unsigned requests (public buckets).
    pub anonymous: bool,
    /// A local cache of stored objects: its directory and size bound in bytes.
    pub disk_cache: Option<(PathBuf, u64)>,
}

/// Whether `store` names a store in object storage rather than a directory.
pub fn is_url(store: &str) -> bool {
    ["s3://", "http://", "https://"]
        .iter()
        .any(|scheme| store.starts_with(scheme))
}

/// Retries of a failed request: quick, then backing off up to 2 s, for 10 s at most.
fn retries() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(10),
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Opens the store at `location`.
pub fn open(location: &Location, options: RemoteOptions) -> io::Result<ObjectStore> {
    let counters = Arc::new(Counters::default());
    let mut client = ClientOptions::new()
        .with_timeout(options.request_timeout)
        .with_connect_timeout(Duration::from_secs(5))
        .with_pool_max_idle_per_host(options.max_requests);
    let endpoint = location
        .endpoint
        .as_deref()
        .map(|e| e.trim_end_matches('/'));
    if endpoint.is_some_and(|e| e.starts_with("http://")) || location.url.starts_with("http://") {
        client = client.with_allow_http(true);
    }
    let to_io = |e: object_store::Error| invalid(format!("{}: {e}", location.url));
    let (store, name, mut options): (Arc<dyn object_store::ObjectStore>, String, RemoteOptions) =
        if let Some(rest) = location.url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid(format!("{}: no bucket", location.url)));
            }
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .with_client_options(client)
                .with_retry(retries())
                .with_http_connector(MeteredConnector(counters.clone()));
            builder = credentials(builder, location)?;
            if let Some(endpoint) = endpoint {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(false);
            }
            let s3 = builder.build().map_err(to_io)?;
            let prefix = prefix.trim_matches('/');
            let store: Arc<dyn object_store::ObjectStore> = if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            };
            (store, location.url.clone(), options)
        } else {
            let http = HttpBuilder::new()
                .with_url(location.url.trim_end_matches('/'))
                .with_client_options(client)
                .with_retry(retries())
                .with_http_connector(MeteredConnector(counters.clone()))
                .build()
                .map_err(to_io)?;
            let options = RemoteOptions {
                read_only: true,
                listable: false,
                ..options
            };
            (Arc::new(http), location.url.clone(), options)
        };
    options.max_requests = options.max_requests.max(1);
    let store: Arc<dyn object_store::ObjectStore> =
        Arc::new(LimitStore::new(store, options.max_requests));
    let disk = match &location.disk_cache {
        Some((dir, size)) => {
            let identity = format!("{}@{}", location.url, endpoint.unwrap_or("aws"));
            Some(DiskCache::open(dir, *size, &identity).map_err(|e| {
                io::Error::new(e.kind(), format!("disk cache {}: {e}", dir.display()))
            })?)
        }
        None => None,
    };
    // Retries may take their full time after a request ran into its own timeout.
    let deadline = options.request_timeout * 2 + retries().retry_timeout;
    let runtime = Runtime::new(2, deadline)?;
    Ok(ObjectStore::new(
        name, store, runtime, options, counters, disk,
    ))
}

/// Adds credentials and region to an S3 builder: none with `--anonymous`; else the
/// environment's (already read), else the shared files' for the profile. Without any, and
/// with instance metadata disabled (`AWS_EC2_METADATA_DISABLED`), opening fails rather than
/// sending unsigned requests.
fn credentials(mut builder: AmazonS3Builder, location: &Location) -> io::Result<AmazonS3Builder> {
    if let Some(region) = &location.region {
        builder = builder.with_region(region);
    }
    if location.anonymous {
        return Ok(builder.with_skip_signature(true));
    }
    let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".into());
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let file = |var: &str, default: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .unwrap_or_else(|| home.join(".aws").join(default))
    };
    let shared = [
        (
            file("AWS_SHARED_CREDENTIALS_FILE", "credentials"),
            profile.clone(),
        ),
        (file("AWS_CONFIG_FILE", "config"), config_section(&profile)),
    ];
    for (path, section) in &shared {
        for (key, value) in profile_settings(path, section) {
            if builder.get_config_value(&key).is_none()
                && !(key == AmazonS3ConfigKey::Region && location.region.is_some())
            {
                builder = builder.with_config(key, value);
            }
        }
    }
    let has_key = builder
        .get_config_value(&AmazonS3ConfigKey::AccessKeyId)
        .is_some();
    let other_source = [
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ]
    .iter()
    .any(|var| std::env::var_os(var).is_some());
    let no_metadata =
        std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    if !has_key && !other_source && no_metadata {
        return Err(invalid(format!(
            "{}: no AWS credentials (AWS_ACCESS_KEY_ID, or profile {profile:?} in the shared \
             files) and instance metadata is disabled; pass --anonymous for a public bucket",
            location.url
        )));
    }
    Ok(builder)
}

/// The section of the AWS config file that holds a profile.
fn config_section(profile: &str) -> String {
    if profile == "default" {
        profile.to_string()
    } else {
        format!("profile {profile}")
    }
}

/// The settings of `section` in an AWS shared file that the S3 builder knows (keys,
/// session token, region, endpoint); none when the file or section is missing.
fn profile_settings(path: &Path, section: &str) -> Vec<(AmazonS3ConfigKey, String)> {
    let Ok(ini) = ini::Ini::load_from_file(path) else {
        return Vec::new();
    };
    let Some(properties) = ini.section(Some(section)) else {
        return Vec::new();
    };
    properties
        .iter()
        .filter_map(|(name, value)| {
            let key = match name {
                "aws_access_key_id" => AmazonS3ConfigKey::AccessKeyId,
                "aws_secret_access_key" => AmazonS3ConfigKey::SecretAccessKey,
                "aws_session_token" => AmazonS3ConfigKey::Token,
                "region" => AmazonS3ConfigKey::Region,
                "endpoint_url" => AmazonS3ConfigKey::Endpoint,
                _ => return None,
            };
            Some((key, value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_read_from_the_shared_files() {
        let dir = tempfile::tempdir().unwrap();
        let credentials = dir.path().join("credentials");
        std::fs::write(
            &credentials,
            "[default]\naws_access_key_id = A\naws_secret_access_key = S\n\
             [work]\naws_access_key_id = W\naws_secret_access_key = WS\naws_session_token = T\n",
        )
        .unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, "[profile work]\nregion = eu-west-3\nother = x\n").unwrap();
        let work = profile_settings(&credentials, "work");
        assert_eq!(
            work,
            [
                (AmazonS3ConfigKey::AccessKeyId, "W".to_string()),
                (AmazonS3ConfigKey::SecretAccessKey, "WS".to_string()),
                (AmazonS3ConfigKey::Token, "T".to_string()),
            ]
        );
        assert_eq!(
            profile_settings(&config, &config_section("work")),
            [(AmazonS3ConfigKey::Region, "eu-west-3".to_string())]
        );
        assert!(profile_settings(&config, "default").is_empty());
        assert!(profile_settings(&dir.path().join("none"), "default").is_empty());
    }

    #[test]
    fn store_urls_are_told_from_directories() {
        assert!(is_url("s3://bucket/prefix"));
        assert!(is_url("https://example.org/a.zarr"));
        assert!(!is_url("/data/a.zarr"));
        assert!(!is_url("s3/relative"));
    }
}
