//! A deterministic, realistic synthetic soa-configs tree, for benchmarks.
//!
//! One implementation shared by `examples/synthetic_tree.rs` (writes a tree to
//! a directory you name) and `benches/render.rs` (writes one into a tempdir),
//! so the CLI measurements and the criterion numbers see the same input.
//! std only: YAML and JSON are written as text.
//!
//! # What a tree looks like
//!
//! For every service `<domain>_<noun>_<NNNN>`:
//!
//! * `flink-<cluster>.yaml` for every cluster, 2–4 instances (3 on average):
//!   always `main`, then distinct names from a pool (`canary`, `backfill`,
//!   `hourly_rollup`, ...). The file opens with a `_template: &template`
//!   (with nested `&jobmanager` and `&flink_conf` anchors) and a
//!   `_small: &small` sizing template; instances pull them in with
//!   `<<: *template` or `<<: [*small, *template]`, override nested
//!   `taskmanager`/`jobmanager`/`flink_conf` (`<<: *flink_conf`) maps and add
//!   `jobs`, `env` and a `topics` list. Values use YAML 1.1 typing the way
//!   real files do (`yes`, `10 min`, floats, quoted strings).
//! * `deployments.json` (v2): one `deployments` entry per deploy group that
//!   has an image and one `controls` entry per instance of every cluster.
//!   About 3% of the non-`main` instances name a deploy group without an
//!   image yet (`<env>.next`), so PaaSTA skips them ("not deployed").
//! * `autotuned_defaults/flink-<cluster>.yaml` for ~35% of the services in
//!   clusters whose name contains `prod` and ~10% elsewhere: per-instance
//!   `taskmanager`/`jobmanager` sizing, sometimes a stale instance that is no
//!   longer in the instance file (dropped by the loader).
//! * `service.yaml` for ~75% of the services (~8% of those with their own
//!   `docker_registry`), plus files the renderer must ignore:
//!   `monitoring.yaml` (~50%) and `deploy.yaml` (~50%). A `README.md` sits at
//!   the top of the tree, like in the fixture tree.
//!
//! The deploy-group environment is `prod` when the cluster name contains
//! `prod`, `dev` otherwise. Render with a configuration that has a
//! `docker_registry` and `autotuned_defaults: true`, such as
//! `fixtures/flink-gitops.yaml`: then every instance either renders or is
//! skipped, and [`ClusterCounts`] says how many of each to expect.
//!
//! The output depends only on [`Options`]: the same options give a
//! byte-identical tree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::path::Path;

/// The size the performance target is stated for.
pub const DEFAULT_SERVICES: usize = 2000;
/// The clusters of the fixture tree.
pub const DEFAULT_CLUSTERS: [&str; 2] = ["pnw-prod", "norcal-devc"];
pub const DEFAULT_SEED: u64 = 1;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub services: usize,
    pub clusters: Vec<String>,
    pub seed: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            services: DEFAULT_SERVICES,
            clusters: DEFAULT_CLUSTERS.iter().map(|&c| c.to_owned()).collect(),
            seed: DEFAULT_SEED,
        }
    }
}

/// What rendering one cluster of the tree must produce.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterCounts {
    /// Instances in `flink-<cluster>.yaml` files (templates excluded).
    pub instances: usize,
    /// Instances whose deploy group has an image: rendered.
    pub deployed: usize,
    /// Instances whose deploy group has no image yet: skipped.
    pub not_deployed: usize,
    /// `autotuned_defaults/flink-<cluster>.yaml` files.
    pub autotuned_files: usize,
}

/// What was written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub services: usize,
    pub files: usize,
    pub bytes: u64,
    pub clusters: BTreeMap<String, ClusterCounts>,
}

/// Writes the tree into `out`, which must be empty or not exist yet (so a
/// tree never mixes with the leftovers of a bigger one).
pub fn generate(out: &Path, options: &Options) -> io::Result<Summary> {
    if out.exists() && fs::read_dir(out)?.next().is_some() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not empty", out.display()),
        ));
    }
    if options.clusters.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "at least one cluster is needed",
        ));
    }
    fs::create_dir_all(out)?;
    let mut writer = Writer {
        summary: Summary {
            services: options.services,
            clusters: options
                .clusters
                .iter()
                .map(|c| (c.clone(), ClusterCounts::default()))
                .collect(),
            ..Summary::default()
        },
    };
    writer.write(&out.join("README.md"), &readme(options))?;
    for index in 0..options.services {
        let service = plan_service(options, index);
        writer.write_service(out, &service)?;
    }
    Ok(writer.summary)
}

const DOMAINS: [&str; 15] = [
    "ads",
    "payments",
    "search",
    "geo",
    "menu",
    "reviews",
    "fraud",
    "inventory",
    "notifications",
    "users",
    "orders",
    "delivery",
    "pricing",
    "experiments",
    "logistics",
];
const NOUNS: [&str; 12] = [
    "events",
    "sessionizer",
    "aggregator",
    "enricher",
    "indexer",
    "scorer",
    "joiner",
    "ledger",
    "sink",
    "fanout",
    "dedup",
    "rollup",
];
const EXTRA_INSTANCES: [&str; 9] = [
    "canary",
    "backfill",
    "shadow",
    "replay",
    "enrichment",
    "hourly_rollup",
    "dedup",
    "sessionizer_v2",
    "audit",
];
const JOB_NAMES: [&str; 8] = [
    "ingest",
    "join",
    "window",
    "emit",
    "attribution",
    "score",
    "compact",
    "publish",
];

/// SplitMix64: tiny, std-only, and stable across platforms and Rust versions.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, stream: u64) -> Self {
        let mut rng = Rng(seed ^ stream.wrapping_mul(0xD6E8_FEB8_6659_FD93));
        rng.next();
        rng
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `low..=high` (the tiny modulo bias does not matter here).
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }

    fn percent(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    /// A 40-hex-digit git sha.
    fn sha(&mut self) -> String {
        format!(
            "{:016x}{:016x}{:08x}",
            self.next(),
            self.next(),
            self.next() >> 32
        )
    }
}

/// FNV-1a, to derive a per-cluster random stream from the cluster's name, so
/// a cluster's files do not change when other clusters are added.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01B3)
    })
}

struct ServicePlan {
    name: String,
    /// Seeds the images (git shas) of the service's deploy groups.
    image_seed: u64,
    service_yaml: Option<String>,
    monitoring_yaml: Option<String>,
    deploy_yaml: Option<String>,
    clusters: Vec<ClusterPlan>,
}

struct ClusterPlan {
    cluster: String,
    instances: Vec<InstancePlan>,
    instance_yaml: String,
    autotuned_yaml: Option<String>,
}

struct InstancePlan {
    name: &'static str,
    /// What the file says: `None` means "no key" (PaaSTA's default branch).
    deploy_group: Option<String>,
    /// The group after interpolation, as looked up in `deployments.json`.
    resolved_group: String,
    deployed: bool,
    desired_state: &'static str,
}

fn env_of(cluster: &str) -> &'static str {
    if cluster.contains("prod") {
        "prod"
    } else {
        "dev"
    }
}

fn plan_service(options: &Options, index: usize) -> ServicePlan {
    let mut rng = Rng::new(options.seed, index as u64);
    let domain = rng.pick(&DOMAINS);
    let noun = rng.pick(&NOUNS);
    let name = format!("{domain}_{noun}_{index:04}");
    let service_yaml = rng.percent(75).then(|| {
        let mut text = format!(
            "---\ndescription: {domain} {noun} stream processing (synthetic).\n\
             external_link: https://wiki.example.com/display/STREAM/{name}\n\
             git_url: git@git.example.com:services/{name}\n"
        );
        if rng.percent(8) {
            text.push_str(
                "# their registry, not the shared PaaSTA one.\n\
                 docker_registry: other-registry.example.com:443\n",
            );
        }
        text
    });
    let monitoring_yaml = rng.percent(50).then(|| {
        format!(
            "---\nteam: {domain}-streaming\nnotification_email: {domain}-streaming@example.com\n\
             runbook: https://runbooks.example.com/{name}\npage: {}\n",
            if rng.percent(70) { "true" } else { "false" }
        )
    });
    let deploy_yaml = rng.percent(50).then(|| {
        "---\npipeline:\n  - step: itest\n  - step: push-to-registry\n  - step: dev.everything\n  \
         - step: prod.canary\n    trigger_next_step_manually: true\n  - step: prod.everything\n"
            .to_owned()
    });
    let clusters = options
        .clusters
        .iter()
        .map(|cluster| {
            let mut rng = Rng::new(options.seed ^ fnv(cluster), index as u64);
            plan_cluster(&mut rng, cluster, &name, domain)
        })
        .collect();
    ServicePlan {
        name,
        image_seed: rng.next(),
        service_yaml,
        monitoring_yaml,
        deploy_yaml,
        clusters,
    }
}

/// A cluster's instances and files, from its own random stream, so that a
/// cluster's files do not change when other clusters are added.
fn plan_cluster(rng: &mut Rng, cluster: &str, service: &str, domain: &str) -> ClusterPlan {
    let env = env_of(cluster);
    let count = rng.range(2, 4) as usize;
    let mut names = vec!["main"];
    while names.len() < count {
        let candidate = rng.pick(&EXTRA_INSTANCES);
        if !names.contains(&candidate) {
            names.push(candidate);
        }
    }
    let instances: Vec<InstancePlan> = names
        .into_iter()
        .map(|name| {
            let branch = format!("{cluster}.{name}");
            let (deploy_group, resolved_group) = match name {
                "main" => {
                    let group = format!("{env}.everything");
                    (Some(group.clone()), group)
                }
                "canary" => {
                    let group = format!("{env}.canary");
                    (Some(group.clone()), group)
                }
                _ if rng.percent(3) => {
                    let group = format!("{env}.next");
                    (Some(group.clone()), group)
                }
                _ => match rng.range(0, 4) {
                    0 | 1 => (None, branch),
                    2 | 3 => (Some("'{cluster}.{instance}'".to_owned()), branch),
                    _ => {
                        let group = format!("{env}.everything");
                        (Some(group.clone()), group)
                    }
                },
            };
            let deployed = !resolved_group.ends_with(".next");
            let desired_state = if rng.percent(5) { "stop" } else { "start" };
            InstancePlan {
                name,
                deploy_group,
                resolved_group,
                deployed,
                desired_state,
            }
        })
        .collect();
    let file = FileContext {
        service,
        domain,
        cluster,
        env,
    };
    let instance_yaml = instance_file(rng, &file, &instances);
    let autotuned_yaml = rng.percent(if env == "prod" { 35 } else { 10 }).then(|| {
        let stale = rng.percent(30);
        autotuned_file(rng, &instances, stale)
    });
    ClusterPlan {
        cluster: cluster.to_owned(),
        instances,
        instance_yaml,
        autotuned_yaml,
    }
}

struct Writer {
    summary: Summary,
}

impl Writer {
    fn write(&mut self, path: &Path, text: &str) -> io::Result<()> {
        fs::write(path, text)?;
        self.summary.files += 1;
        self.summary.bytes += text.len() as u64;
        Ok(())
    }

    fn write_service(&mut self, out: &Path, service: &ServicePlan) -> io::Result<()> {
        let dir = out.join(&service.name);
        fs::create_dir_all(&dir)?;
        for (file, text) in [
            ("service.yaml", &service.service_yaml),
            ("monitoring.yaml", &service.monitoring_yaml),
            ("deploy.yaml", &service.deploy_yaml),
        ] {
            if let Some(text) = text {
                self.write(&dir.join(file), text)?;
            }
        }
        // One image per deploy group, shared by the clusters that use it.
        let mut deployments: BTreeMap<String, String> = BTreeMap::new();
        for cluster in &service.clusters {
            let file = format!("flink-{}.yaml", cluster.cluster);
            self.write(&dir.join(&file), &cluster.instance_yaml)?;
            if let Some(text) = &cluster.autotuned_yaml {
                fs::create_dir_all(dir.join("autotuned_defaults"))?;
                self.write(&dir.join("autotuned_defaults").join(&file), text)?;
            }
            let counts = self
                .summary
                .clusters
                .get_mut(&cluster.cluster)
                .expect("every cluster has counts");
            counts.autotuned_files += usize::from(cluster.autotuned_yaml.is_some());
            for instance in &cluster.instances {
                counts.instances += 1;
                if instance.deployed {
                    counts.deployed += 1;
                    deployments
                        .entry(instance.resolved_group.clone())
                        .or_insert_with(|| {
                            Rng::new(service.image_seed ^ fnv(&instance.resolved_group), 0).sha()
                        });
                } else {
                    counts.not_deployed += 1;
                }
            }
        }
        self.write(
            &dir.join("deployments.json"),
            &deployments_json(&service.name, &deployments, &service.clusters),
        )
    }
}

fn readme(options: &Options) -> String {
    format!(
        "# Synthetic soa-configs tree\n\n\
         Generated by `cargo run --release --example synthetic_tree` \
         (services: {}, clusters: {}, seed: {}).\n\
         Images, buckets and hostnames are fake. Tools must ignore this file.\n",
        options.services,
        options.clusters.join(","),
        options.seed
    )
}

/// Tenths as a YAML float: `3.2`.
fn tenths(value: u64) -> String {
    format!("{}.{}", value / 10, value % 10)
}

/// Who an instance file belongs to.
struct FileContext<'a> {
    service: &'a str,
    domain: &'a str,
    cluster: &'a str,
    env: &'static str,
}

fn instance_file(rng: &mut Rng, file: &FileContext<'_>, instances: &[InstancePlan]) -> String {
    let FileContext {
        service: name,
        domain,
        cluster: cluster_name,
        env,
    } = *file;
    let mut y = String::with_capacity(4096);
    let _ = write!(
        y,
        "---\n# {name} on {cluster_name}.\n\
         # Owner: #{domain}-streaming. Sizing is handled by autotune where enabled \
         (see autotuned_defaults/).\n\n\
         _template: &template\n  \
           app_type: flink\n  \
           job_type: stateful\n  \
           checkpoint_interval_ms: {interval}\n  \
           checkpoint_path: s3://example-flink-checkpoints-{cluster_name}/{name}/\n  \
           savepoint_path: s3://example-flink-savepoints-{cluster_name}/{name}/\n  \
           iam_role: arn:aws:iam::123456789012:role/flink-{role}\n  \
           jobmanager: &jobmanager\n    \
             cpus: {jm_cpus}\n    \
             mem: {jm_mem}\n  \
           flink_conf: &flink_conf\n    \
             state.backend.type: rocksdb\n    \
             state.backend.incremental: true\n    \
             execution.checkpointing.mode: EXACTLY_ONCE\n    \
             taskmanager.numberOfTaskSlots: {slots}\n    \
             pipeline.max-parallelism: {max_parallelism}\n  \
           monitoring:\n    \
             team: {domain}-streaming\n    \
             page: {page}\n\n\
         _small: &small\n  \
           job_type: stateless\n  \
           taskmanager:\n    \
             instances: 1\n    \
             cpus: 0.5\n    \
             mem: 2048\n\n",
        interval = rng.range(1, 10) * 30_000,
        role = name.replace('_', "-"),
        jm_cpus = rng.pick(&["0.5", "1", "2"]),
        jm_mem = rng.range(1, 4) * 2048,
        slots = rng.range(1, 4),
        max_parallelism = rng.range(1, 8) * 120,
        page = if env == "prod" { "yes" } else { "no" },
    );
    for instance in instances {
        let small = instance.name != "main" && rng.percent(30);
        let _ = writeln!(y, "{}:", instance.name);
        if small {
            y.push_str("  <<: [*small, *template]\n");
        } else {
            y.push_str("  <<: *template\n");
        }
        if let Some(group) = &instance.deploy_group {
            let _ = writeln!(y, "  deploy_group: {group}");
        }
        if !small {
            let _ = write!(
                y,
                "  taskmanager:\n    instances: {}\n    cpus: {}\n    mem: {}\n",
                rng.range(1, 16),
                rng.range(1, 8),
                rng.range(2, 16) * 1024
            );
        }
        if rng.percent(40) {
            let _ = write!(
                y,
                "  jobmanager:\n    <<: *jobmanager\n    mem: {}   # bigger heap for this one\n",
                rng.range(3, 8) * 1024
            );
        }
        let _ = write!(
            y,
            "  flink_conf:\n    <<: *flink_conf\n    execution.checkpointing.timeout: {} min\n",
            rng.range(2, 20)
        );
        if rng.percent(30) {
            let _ = writeln!(
                y,
                "    state.backend.rocksdb.block.cache-size: \"{}\"",
                rng.range(1, 8) * 512
            );
        }
        if rng.percent(20) {
            let _ = writeln!(
                y,
                "    taskmanager.memory.jvm-overhead.fraction: {}",
                tenths(rng.range(1, 3))
            );
        }
        y.push_str("  jobs:\n");
        let jobs = rng.range(1, 3);
        for job in 0..jobs {
            let job_name = JOB_NAMES[((rng.next() % 8) as usize + job as usize) % 8];
            let _ = write!(
                y,
                "    {job_name}_{job}:\n      parallelism: {}\n      monitoring:\n        team: {domain}-streaming\n",
                rng.range(1, 64)
            );
        }
        let _ = write!(
            y,
            "  env:\n    KAFKA_CLUSTER: {domain}-{cluster_name}\n    SOURCE_TOPIC: {domain}.{}.v{}\n    \
             ENABLE_METRICS: \"true\"\n",
            instance.name,
            rng.range(1, 5)
        );
        let _ = writeln!(
            y,
            "  topics: [{domain}.events.v1, {domain}.{}.out, {domain}.dlq]",
            instance.name
        );
        if instance.name == "canary" {
            let _ = write!(
                y,
                "  monitoring:\n    team: {domain}-streaming\n    page: false   # canaries never page\n"
            );
        }
        y.push('\n');
    }
    y
}

fn autotuned_file(rng: &mut Rng, instances: &[InstancePlan], stale: bool) -> String {
    let mut y = String::from(
        "---\n# THIS FILE IS GENERATED BY THE AUTOTUNE BOT. DO NOT EDIT BY HAND.\n\
         # Last run: 2024-05-02T04:13:51Z\n",
    );
    let stale = stale.then_some("old_replay");
    for name in instances.iter().map(|i| i.name).chain(stale) {
        if stale == Some(name) {
            y.push_str("# instance deleted from the instance file; autotune has not caught up\n");
        }
        let _ = write!(
            y,
            "{name}:\n  taskmanager:\n    cpus: {}\n    mem: {}\n    disk: {}\n  jobmanager:\n    mem: {}\n",
            tenths(rng.range(5, 80)),
            rng.range(2, 32) * 1024,
            rng.range(1, 4) * 10240,
            rng.range(1, 6) * 1024
        );
        if rng.percent(50) {
            let _ = write!(
                y,
                "  supervisor:\n    cpus: 0.25\n    mem: {}\n",
                rng.range(1, 4) * 256
            );
        }
    }
    y
}

fn deployments_json(
    service: &str,
    deployments: &BTreeMap<String, String>,
    clusters: &[ClusterPlan],
) -> String {
    let mut j = String::from("{\n  \"v1\": {},\n  \"v2\": {\n    \"deployments\": {\n");
    for (index, (group, sha)) in deployments.iter().enumerate() {
        let comma = if index + 1 < deployments.len() {
            ","
        } else {
            ""
        };
        let _ = write!(
            j,
            "      \"{group}\": {{\n        \"docker_image\": \"services-{service}:paasta-{sha}\",\n        \
             \"git_sha\": \"{sha}\",\n        \"image_version\": null\n      }}{comma}\n"
        );
    }
    j.push_str("    },\n    \"controls\": {\n");
    let controls: BTreeMap<String, &str> = clusters
        .iter()
        .flat_map(|cluster| {
            cluster.instances.iter().map(move |instance| {
                (
                    format!("{service}:{}.{}", cluster.cluster, instance.name),
                    instance.desired_state,
                )
            })
        })
        .collect();
    for (index, (control, state)) in controls.iter().enumerate() {
        let comma = if index + 1 < controls.len() { "," } else { "" };
        let _ = writeln!(
            j,
            "      \"{control}\": {{\"desired_state\": \"{state}\", \"force_bounce\": null}}{comma}"
        );
    }
    j.push_str("    }\n  }\n}\n");
    j
}
