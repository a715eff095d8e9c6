//! From a cache URL to an `object_store` client: which backend a scheme names, where in the
//! bucket or server the cache lives, and the client settings that keep a dead server from
//! stalling a build (short timeouts, few retries). Credentials come from each backend's
//! usual environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`), never from the URL or a
//! project file.

use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path as StorePath;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

use crate::diag::Hinted;

/// The backends a cache URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    S3,
    Gcs,
    Azure,
    Http,
    File,
}

/// A cache URL, split into the backend, the location it opens and the prefix inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub scheme: Scheme,
    /// What the backend's builder is given: `s3://bucket`, `https://host/dir`, a local
    /// directory.
    pub base: String,
    /// The path inside the bucket under which the cache's objects live (may be empty).
    pub prefix: String,
}

fn bad(url: &str, why: &str) -> anyhow::Error {
    Hinted::new(
        format!("`{url}` is not a cache URL: {why}"),
        "use s3://BUCKET[/PREFIX], gs://BUCKET[/PREFIX], az://CONTAINER[/PREFIX], https://HOST/PATH or file:///ABSOLUTE/DIR",
    )
    .into()
}

/// Split a cache URL. Object-store URLs keep their bucket as the base and the rest as the
/// prefix; HTTP URLs keep the whole URL as the base (the server decides what paths mean).
pub fn parse(url: &str) -> anyhow::Result<Location> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad(url, "it has no scheme"));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "s3" | "s3a" => Scheme::S3,
        "gs" => Scheme::Gcs,
        "az" | "abfs" | "abfss" | "azure" => Scheme::Azure,
        "http" | "https" => Scheme::Http,
        "file" => Scheme::File,
        other => return Err(bad(url, &format!("`{other}://` is not supported"))),
    };
    if rest.contains(['?', '#']) {
        return Err(bad(
            url,
            "it has a query or fragment (credentials belong in the environment)",
        ));
    }
    match scheme {
        Scheme::File => {
            if !rest.starts_with('/') {
                return Err(bad(url, "a file URL needs an absolute path (file:///dir)"));
            }
            Ok(Location {
                scheme,
                base: rest.trim_end_matches('/').to_string(),
                prefix: String::new(),
            })
        }
        Scheme::Http => {
            if rest.is_empty() || rest.starts_with('/') {
                return Err(bad(url, "it names no host"));
            }
            Ok(Location {
                scheme,
                base: url.trim_end_matches('/').to_string(),
                prefix: String::new(),
            })
        }
        _ => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() || bucket.contains('@') {
                return Err(bad(url, "it names no bucket"));
            }
            let scheme_text = url.split_once("://").map_or("", |(s, _)| s);
            Ok(Location {
                scheme,
                base: format!("{scheme_text}://{bucket}"),
                prefix: prefix.trim_matches('/').to_string(),
            })
        }
    }
}

/// Client settings for every remote backend: a build waits at most seconds for a server
/// that is down, not the minutes of the defaults.
fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(120))
}

fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(15),
    }
}

/// The environment variables starting with `prefix`, keys lower-cased (how the backends'
/// `from_env` reads them).
fn env_config(prefix: &str) -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect()
}

/// Build the client for `location`. Nothing is contacted yet.
pub fn open(url: &str, location: &Location) -> anyhow::Result<(Arc<dyn ObjectStore>, StorePath)> {
    let failed = |e: object_store::Error| bad(url, &e.to_string());
    let store: Arc<dyn ObjectStore> = match location.scheme {
        // The builders start from our client settings; the backend's own environment
        // variables (as its `from_env` reads them) come on top, so `AWS_ALLOW_HTTP` or a
        // user's `AWS_TIMEOUT` still apply.
        Scheme::S3 => {
            let mut b = object_store::aws::AmazonS3Builder::new()
                .with_client_options(client_options())
                .with_retry(retry());
            for (k, v) in env_config("AWS_") {
                if let Ok(key) = k.parse::<object_store::aws::AmazonS3ConfigKey>() {
                    b = b.with_config(key, v);
                }
            }
            Arc::new(b.with_url(&location.base).build().map_err(failed)?)
        }
        Scheme::Gcs => {
            let mut b = object_store::gcp::GoogleCloudStorageBuilder::new()
                .with_client_options(client_options())
                .with_retry(retry());
            if let Ok(path) = std::env::var("SERVICE_ACCOUNT") {
                b = b.with_service_account_path(path);
            }
            for (k, v) in env_config("GOOGLE_") {
                if let Ok(key) = k.parse::<object_store::gcp::GoogleConfigKey>() {
                    b = b.with_config(key, v);
                }
            }
            Arc::new(b.with_url(&location.base).build().map_err(failed)?)
        }
        Scheme::Azure => {
            let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                .with_client_options(client_options())
                .with_retry(retry());
            for (k, v) in env_config("AZURE_") {
                if let Ok(key) = k.parse::<object_store::azure::AzureConfigKey>() {
                    b = b.with_config(key, v);
                }
            }
            if let Ok(endpoint) = std::env::var("IDENTITY_ENDPOINT") {
                b = b.with_msi_endpoint(endpoint);
            }
            Arc::new(b.with_url(&location.base).build().map_err(failed)?)
        }
        Scheme::Http => Arc::new(
            object_store::http::HttpBuilder::new()
                .with_url(&location.base)
                .with_client_options(client_options().with_allow_http(true))
                .with_retry(retry())
                .build()
                .map_err(failed)?,
        ),
        Scheme::File => {
            std::fs::create_dir_all(&location.base)
                .map_err(|e| bad(url, &format!("cannot create `{}`: {e}", location.base)))?;
            Arc::new(
                object_store::local::LocalFileSystem::new_with_prefix(&location.base)
                    .map_err(failed)?,
            )
        }
    };
    let prefix = StorePath::parse(&location.prefix)
        .map_err(|e| bad(url, &format!("its path is not usable ({e})")))?;
    Ok((store, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_backend_base_and_prefix() {
        let l = parse("s3://bucket/team/litert/").unwrap();
        assert_eq!(
            (l.scheme, l.base.as_str(), l.prefix.as_str()),
            (Scheme::S3, "s3://bucket", "team/litert")
        );
        let l = parse("gs://b").unwrap();
        assert_eq!((l.scheme, l.prefix.as_str()), (Scheme::Gcs, ""));
        assert_eq!(parse("az://container/x").unwrap().scheme, Scheme::Azure);
        let l = parse("https://cache.example/litert/").unwrap();
        assert_eq!(
            (l.scheme, l.base.as_str()),
            (Scheme::Http, "https://cache.example/litert")
        );
        let l = parse("file:///var/cache/litert").unwrap();
        assert_eq!(
            (l.scheme, l.base.as_str()),
            (Scheme::File, "/var/cache/litert")
        );
    }

    #[test]
    fn bad_urls_say_what_is_wrong() {
        for (url, why) in [
            ("bucket/x", "no scheme"),
            ("ftp://host/x", "`ftp://` is not supported"),
            ("file://relative/dir", "absolute path"),
            ("s3:///prefix", "no bucket"),
            ("https:///x", "no host"),
            ("s3://b/x?secret=1", "query"),
        ] {
            let err = parse(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
    }
}
