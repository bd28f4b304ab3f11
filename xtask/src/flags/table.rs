//! Every subcommand, its arguments and flags, with their help texts: the one statement of the
//! command line that the parser, each `--help` and the tidy tests read.

use super::{repeated, switch, valued, Command, Flag, Positional, Sub};

const BUILDER: Flag = valued("builder", "NAME", "Use this buildx builder instead of the current one.");
const SET: Flag = repeated("set", "KV", "Override a bake attribute, e.g. `--set backend.args.X=1` (repeatable).");
const ALLOW: Flag = repeated(
    "allow",
    "fs.read=PATH",
    "Grant bake a path outside the checkout (fs.read=PATH or fs.write=PATH, repeatable).",
);
const REGISTRY: Flag =
    valued("registry", "HOST:PORT", "Registry to tag for, push to and use as a cache (e.g. 127.0.0.1:5000).");
const VERSION: Flag = valued(
    "release-version",
    "SEMVER",
    "The product version to build (default: a vX.Y.Z tag on HEAD, else Cargo.toml).",
);

/// The flags every building command shares.
pub const BUILD: &[Flag] = &[
    switch("dry-run", "Print the plan (commands, environment, bake definition) and run nothing."),
    switch("no-cache", "Build every step again, ignoring the build cache."),
    switch(
        "cache-export",
        "Export the mode=max build cache (to target/buildx-cache/, or the registry when one is set); on with a configured registry; with CI=true only to a registry.",
    ),
    switch("pull", "Check the registry for newer base images."),
    valued("progress", "MODE", "Progress display: auto, plain, tty or rawjson (default: BUILDKIT_PROGRESS in .env, auto)."),
    BUILDER,
    SET,
    ALLOW,
    REGISTRY,
    VERSION,
];

/// What `print` shares with the building commands: what the plan depends on.
const PLAN: &[Flag] = &[BUILDER, SET, ALLOW, REGISTRY, VERSION];

/// Which private engine: the channel and the image store.
const ENGINE: &[Flag] = &[
    valued("channel", "CHANNEL", "`current` (Debian testing's Docker, the default) or `floor` (Debian stable's)."),
    switch("classic", "The engine that keeps images in the classic store instead of the containerd image store."),
    valued(
        "name",
        "NAME",
        "Another engine beside the built-in ones, with its own folder, store, sockets, bridge, subnet and registry port (e.g. `second`).",
    ),
];

/// Signing what is pushed (see `signing.rs`).
const SIGN: &[Flag] = &[
    switch("sign", "Sign the pushed images by digest with cosign (needs --push and a key)."),
    valued("key", "FILE", "The cosign private key (default: COSIGN_KEY_FILE, else the key text in COSIGN_PRIVATE_KEY); password in COSIGN_PASSWORD."),
    switch(
        "keyless",
        "With --sign: sign without a key, by the OIDC identity of the CI workflow (GitHub Actions with id-token: write, or SIGSTORE_ID_TOKEN).",
    ),
];

const NONE: &[&[Flag]] = &[];

pub const COMMANDS: &[Command] = &[
    Command {
        sub: Sub::Build,
        name: "build",
        about: "Build the `default` group (backend, frontend), or the named services or groups. The images are loaded into the engine.",
        positional: Some(Positional { name: "NAMES", repeated: true, help: "Services or bake groups (default: the `default` group)." }),
        flags: &[BUILD],
        examples: &["cargo xtask build", "cargo xtask build backend --no-cache", "cargo xtask build --dry-run"],
    },
    Command { sub: Sub::Backend, name: "backend", about: "Same as `build backend`.", positional: None, flags: &[BUILD], examples: &["cargo xtask backend", "cargo xtask backend --progress plain"] },
    Command { sub: Sub::Frontend, name: "frontend", about: "Same as `build frontend`.", positional: None, flags: &[BUILD], examples: &["cargo xtask frontend", "cargo xtask frontend --no-cache"] },
    Command {
        sub: Sub::Production,
        name: "production",
        about: "Build the `production` group for release. Production stages, version tags (X.Y.Z, X.Y, X, latest), OCI labels and a provenance attestation.",
        positional: None,
        flags: &[&[switch("push", "Push to the registry (--registry or REGISTRY) instead of loading into the engine.")], SIGN, BUILD],
        examples: &["cargo xtask production", "cargo xtask production --push --registry 127.0.0.1:5000 --release-version 1.2.3", "cargo xtask production --push --sign --key cosign.key"],
    },
    Command {
        sub: Sub::Multiplatform,
        name: "multiplatform",
        about: "Build the `multiplatform` group for every platform the bake file names. Makes the arm64 stand-ins the first time they are needed, and says so.",
        positional: Some(Positional { name: "NAMES", repeated: true, help: "Targets or groups (default: the `multiplatform` group)." }),
        flags: &[
            &[
                switch("push", "Push the multi-platform images to the registry."),
                switch("oci", "Write an OCI archive per image under target/xtask/oci/ instead of loading."),
            ],
            SIGN,
            BUILD,
        ],
        examples: &["cargo xtask multiplatform", "cargo xtask multiplatform --oci", "cargo xtask multiplatform --push --registry 127.0.0.1:5000"],
    },
    Command {
        sub: Sub::Print,
        name: "print",
        about: "Print the resolved plan of groups or services without building. The commands, the environment this command uses, the build arguments and the bake definition.",
        positional: Some(Positional { name: "NAME", repeated: true, help: "Groups or services, as `build` takes them (default: the `default` group)." }),
        flags: &[PLAN, &[switch("json", "Print only the bake command, as JSON: program, arguments, environment, folder.")]],
        examples: &["cargo xtask print", "cargo xtask print production", "cargo xtask print --json"],
    },
    Command {
        sub: Sub::Check,
        name: "check",
        about: "Run BuildKit's Dockerfile checks (`bake --call check`). Every target of the default, development and production groups, or of the named ones.",
        positional: Some(Positional { name: "NAMES", repeated: true, help: "Services or bake groups (default: default, development, production)." }),
        flags: NONE,
        examples: &["cargo xtask check", "cargo xtask check backend"],
    },
    Command {
        sub: Sub::Doctor,
        name: "doctor",
        about: "Check this machine for everything a build needs; one line each, with a fix.",
        positional: None,
        flags: NONE,
        examples: &["cargo xtask doctor"],
    },
    Command {
        sub: Sub::Verify,
        name: "verify",
        about: "Check a pushed image's signature and attestations, then rebuild it and compare. The signature is checked with a public key (refused without one unless --accept-unchecked-signature); the rebuild takes the commit of the image's revision label from a clean export, without cache, and compares the per-platform digests, layer by layer where they differ.",
        positional: Some(Positional { name: "IMAGE", repeated: false, help: "A pushed image, e.g. 127.0.0.1:5000/contextcleanse-backend:0.4.0." }),
        flags: &[&[
            valued("key", "FILE", "The cosign public key (default: COSIGN_PUBLIC_KEY; verify refuses to run with neither)."),
            switch("accept-unchecked-signature", "Go on without a public key: the signature is not checked, and verify says so."),
            valued("platform", "PLATFORMS", "Rebuild only these platforms (comma-separated; default: every one the image has)."),
            switch("no-rebuild", "Check the signature and attestations only (needs a key)."),
        ]],
        examples: &["cargo xtask verify 127.0.0.1:5000/contextcleanse-backend:0.4.0 --key cosign.pub", "cargo xtask verify 127.0.0.1:5000/contextcleanse-backend:0.4.0 --key cosign.pub --no-rebuild", "cargo xtask verify 127.0.0.1:5000/contextcleanse-backend:0.4.0 --accept-unchecked-signature"],
    },
    Command {
        sub: Sub::Sbom,
        name: "sbom",
        about: "Print the SBOM BuildKit attached to a pushed image. production and multiplatform attach one per platform; a table of its packages (name, version, type, hash where known), or the SPDX 2.3 document with --json.",
        positional: Some(Positional { name: "IMAGE", repeated: false, help: "A pushed image, e.g. 127.0.0.1:5000/contextcleanse-backend:0.4.0." }),
        flags: &[&[
            valued("platform", "PLATFORM", "Only this platform (default: every one the image has; --json needs one when it has several)."),
            switch("json", "Print the SPDX JSON document instead of the table."),
        ]],
        examples: &["cargo xtask sbom 127.0.0.1:5000/contextcleanse-backend:0.4.0", "cargo xtask sbom 127.0.0.1:5000/contextcleanse-backend:0.4.0 --json --platform linux/amd64"],
    },
    Command {
        sub: Sub::EngineUp,
        name: "engine up",
        about: "Start a private engine: without flags only when no engine answers (idempotent).",
        positional: None,
        flags: &[ENGINE],
        examples: &["cargo xtask engine up", "cargo xtask engine up --channel floor", "cargo xtask engine up --name second"],
    },
    Command {
        sub: Sub::EngineDown,
        name: "engine down",
        about: "Stop the named private engine, or every one this checkout started.",
        positional: None,
        flags: &[ENGINE],
        examples: &["cargo xtask engine down", "cargo xtask engine down --name second"],
    },
    Command {
        sub: Sub::EngineStatus,
        name: "engine status",
        about: "Endpoint, channel and versions, image store, platforms, registry, binfmt.",
        positional: None,
        flags: &[ENGINE],
        examples: &["cargo xtask engine status", "cargo xtask engine status --channel floor"],
    },
    Command {
        sub: Sub::EngineEnv,
        name: "engine env",
        about: "Print the exports that point a shell at a running private engine. Use it as eval \"$(cargo xtask engine env)\".",
        positional: None,
        flags: &[ENGINE],
        examples: &["eval \"$(cargo xtask engine env)\"", "eval \"$(cargo xtask engine env --name second)\""],
    },
    Command {
        sub: Sub::Up,
        name: "up",
        about: "Build what is stale and start the compose stack on the xtask's engine. Waits for the health checks and prints the URLs.",
        positional: Some(Positional { name: "NAMES", repeated: true, help: "Services (default: all); each brings the services it depends on." }),
        flags: &[&[valued("release-version", "SEMVER", "The product version to build (default: a vX.Y.Z tag on HEAD, else Cargo.toml).")]],
        examples: &["cargo xtask up", "cargo xtask up backend"],
    },
    Command {
        sub: Sub::Down,
        name: "down",
        about: "Stop the compose stack: its containers and network go, nothing else.",
        positional: None,
        flags: NONE,
        examples: &["cargo xtask down"],
    },
    Command {
        sub: Sub::Logs,
        name: "logs",
        about: "The stack's logs (`docker compose logs`).",
        positional: Some(Positional { name: "SERVICES", repeated: true, help: "Services (default: all)." }),
        flags: &[&[
            Flag { short: Some('f'), ..switch("follow", "Keep following the output.") },
            valued("tail", "N", "Lines from the end of each service's log."),
        ]],
        examples: &["cargo xtask logs -f backend", "cargo xtask logs --tail 20"],
    },
    Command { sub: Sub::Ps, name: "ps", about: "The stack's containers (`docker compose ps`).", positional: None, flags: NONE, examples: &["cargo xtask ps"] },
    Command {
        sub: Sub::Du,
        name: "du",
        about: "Disk used by this project: build cache, images, registry storage, target/.",
        positional: None,
        flags: NONE,
        examples: &["cargo xtask du"],
    },
    Command {
        sub: Sub::Clean,
        name: "clean",
        about: "Remove this project's build cache and images, never another project's. With no scope flag it lists what it would remove and asks; without a terminal it needs --yes.",
        positional: None,
        flags: &[&[
            switch("cache", "The build cache: BuildKit's records of the project's steps and cache mounts, and the local cache folders."),
            switch("images", "The project's images (not the stand-in bases)."),
            switch("all", "Both: what no scope flag means too, after a question."),
            switch("dry-run", "Say what would go and remove nothing."),
            switch("yes", "Remove without asking (what a run without a terminal needs when no scope flag is given)."),
        ]],
        examples: &["cargo xtask clean", "cargo xtask clean --cache --yes", "cargo xtask clean --all --dry-run"],
    },
    Command {
        sub: Sub::Report,
        name: "report",
        about: "Show build reports: the last one, or a before/after comparison of two builds.",
        positional: Some(Positional { name: "IDS", repeated: true, help: "Build ids for --compare; a target for --why; N after --trend --last." }),
        flags: &[&[
            switch("last", "The last build (the default); with --trend, how many builds: `--trend --last N` (20 by default)."),
            switch("compare", "Compare two builds, given as history ids (see `report --list`) or `last`, `last~1`."),
            switch("list", "List the builds in the history."),
            switch("why", "Each step of the last build that ran, with why it ran; `--why TARGET` for one target."),
            switch("trend", "Per target and step: median run time and cache hit rate over the last builds, and the steps that got worse."),
            switch("json", "Print JSON instead of a table (the format xtask/report.schema.json documents)."),
            switch("markdown", "Print Markdown, e.g. for a CI job summary."),
        ]],
        examples: &["cargo xtask report", "cargo xtask report --compare last~1 last", "cargo xtask report --markdown >> \"$GITHUB_STEP_SUMMARY\""],
    },
    Command {
        sub: Sub::Bench,
        name: "bench",
        about: "Measure cold, warm, source, dependency and metadata-change builds. Writes its table to docs/benchmarks.md.",
        positional: Some(Positional { name: "NAMES", repeated: true, help: "Services to measure (default: backend and frontend)." }),
        flags: &[&[
            valued("runs", "N", "Runs per scenario (default 3)."),
            switch(
                "second-engine",
                "Instead: a second private engine with an empty store, from the first engine's registry cache against its own cold build (starts and stops the engine `bench-second`).",
            ),
        ]],
        examples: &["cargo xtask bench", "cargo xtask bench backend --runs 5", "cargo xtask bench --second-engine"],
    },
    Command {
        sub: Sub::Audit,
        name: "audit",
        about: "Check the locked Python and npm dependencies against advisory sources. A package none could answer for is named as not checked, and the audit fails as incomplete.",
        positional: None,
        flags: &[&[switch("json", "Print the findings as JSON (one object per package).")]],
        examples: &["cargo xtask audit", "cargo xtask audit --json"],
    },
    Command {
        sub: Sub::Metrics,
        name: "metrics",
        about: "Print a build's metrics in the Prometheus text format. The same that is pushed to PUSHGATEWAY after each build.",
        positional: Some(Positional { name: "ID", repeated: false, help: "A build id, `last` (the default) or `last~N`." }),
        flags: NONE,
        examples: &["cargo xtask metrics", "cargo xtask metrics last~1"],
    },
    Command {
        sub: Sub::Test,
        name: "test",
        about: "Run every test suite. xtask unit tests, backend pytest, frontend node tests, hadolint, and the end-to-end tests on the real engine.",
        positional: None,
        flags: &[&[
            switch("no-e2e", "Skip the end-to-end tests (not allowed with CI=true)."),
            switch("quick", "The inner loop: unit, tidy and app tests, then one real build on the engine (not allowed with CI=true)."),
            valued("e2e-filter", "FILTER", "Only run end-to-end tests whose name contains this."),
        ]],
        examples: &["cargo xtask test", "cargo xtask test --quick", "cargo xtask test --e2e-filter stack"],
    },
];
