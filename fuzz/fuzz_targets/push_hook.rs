//! Push-hook request authentication on arbitrary headers and bodies.
#![no_main]

use flink_gitops::config::daemon_settings::HookSettings;
use flink_gitops::daemon::hooks::{HookSecrets, verify};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (header, body) = rest.split_at(usize::from(split).min(rest.len()));
    let dir = std::env::temp_dir().join("flink-gitops-fuzz-hook");
    let _ = std::fs::create_dir_all(&dir);
    let secret = dir.join("secret");
    let _ = std::fs::write(&secret, "fuzz-secret");
    let settings = HookSettings {
        github_secret_file: Some(secret.clone()),
        gitlab_token_file: Some(secret.clone()),
        generic_secret_file: Some(secret),
        ..HookSettings::default()
    };
    let Ok(secrets) = HookSecrets::load(&settings) else {
        return;
    };
    let mut headers = http::HeaderMap::new();
    for name in [
        "x-hub-signature-256",
        "x-gitlab-token",
        "x-flink-gitops-signature",
    ] {
        if let Ok(value) = http::HeaderValue::from_bytes(header) {
            headers.insert(name, value);
        }
    }
    let _ = verify(&headers, body, &secrets);
});
