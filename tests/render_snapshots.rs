//! Snapshots of what `flink-gitops render` prints for each fixture cluster:
//! the YAML stream on stdout and the skips and diagnostics on stderr.
//!
//! Review changes with `cargo insta review`, or regenerate with
//! `INSTA_UPDATE=always cargo test --test render_snapshots` and read the diff.

use std::process::{Command, Output};

fn render(cluster: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flink-gitops"))
        .args([
            "render",
            "--soa-dir",
            "fixtures/soa-configs",
            "--config",
            "fixtures/flink-gitops.yaml",
            "--cluster",
            cluster,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("FLINK_GITOPS_SOA_DIR")
        .env_remove("FLINK_GITOPS_CONFIG")
        .output()
        .expect("run flink-gitops")
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("UTF-8 output")
}

#[test]
fn render_norcal_devc_yaml() {
    let output = render("norcal-devc");
    insta::assert_snapshot!("render_norcal_devc_yaml", text(output.stdout));
}

#[test]
fn render_norcal_devc_stderr() {
    let output = render("norcal-devc");
    // Every norcal-devc instance renders or is skipped (not deployed yet).
    assert_eq!(output.status.code(), Some(0));
    insta::assert_snapshot!("render_norcal_devc_stderr", text(output.stderr));
}

#[test]
fn render_pnw_prod_yaml() {
    let output = render("pnw-prod");
    insta::assert_snapshot!("render_pnw_prod_yaml", text(output.stdout));
}

#[test]
fn render_pnw_prod_stderr() {
    let output = render("pnw-prod");
    assert_eq!(output.status.code(), Some(1));
    insta::assert_snapshot!("render_pnw_prod_stderr", text(output.stderr));
}
