//! The command line: every subcommand and flag, with its help text.

xflags::xflags! {
    /// ContextCleanse's build recipes: Docker BuildKit through `docker buildx bake`.
    /// `cargo xtask build` builds both images; `cargo xtask test` runs every test suite.
    cmd xtask {
        /// List the subcommands.
        default cmd help {}

        /// Build the `default` group (backend and frontend), or the named services or groups,
        /// into the engine.
        cmd build {
            /// Services or bake groups (default: the `default` group).
            repeated names: String
            /// Print the plan (commands, environment, bake definition) and run nothing.
            optional --dry-run
            /// Build every step again, ignoring the build cache.
            optional --no-cache
            /// Export the mode=max build cache (to target/buildx-cache/, or the registry when one
            /// is set); on with CI=true or a configured registry.
            optional --cache-export
            /// Check the registry for newer base images.
            optional --pull
            /// Progress display: auto, plain, tty or rawjson (default: BUILDKIT_PROGRESS).
            optional --progress mode: String
            /// Use this buildx builder instead of the current one.
            optional --builder name: String
            /// Override a bake attribute, e.g. `--set backend.args.X=1` (repeatable).
            repeated --set kv: String
            /// Registry to tag for, push to and use as a cache (e.g. 127.0.0.1:5000).
            optional --registry registry: String
            /// Version to build (semver; default: a vX.Y.Z tag on HEAD, else Cargo.toml).
            optional --version version: String
        }

        /// Same as `build backend`.
        cmd backend {
            optional --dry-run
            optional --no-cache
            optional --cache-export
            optional --pull
            optional --progress mode: String
            optional --builder name: String
            repeated --set kv: String
            optional --registry registry: String
            optional --version version: String
        }

        /// Same as `build frontend`.
        cmd frontend {
            optional --dry-run
            optional --no-cache
            optional --cache-export
            optional --pull
            optional --progress mode: String
            optional --builder name: String
            repeated --set kv: String
            optional --registry registry: String
            optional --version version: String
        }

        /// Build the `production` group: production stages, version tags (X.Y.Z, X.Y, X,
        /// latest), OCI labels and a provenance attestation.
        cmd production {
            /// Push to the registry (--registry or REGISTRY) instead of loading into the engine.
            optional --push
            optional --dry-run
            optional --no-cache
            optional --cache-export
            optional --pull
            optional --progress mode: String
            optional --builder name: String
            repeated --set kv: String
            optional --registry registry: String
            optional --version version: String
        }

        /// Build the `multiplatform` group for linux/amd64 and linux/arm64.
        cmd multiplatform {
            /// Targets or groups (default: the `multiplatform` group).
            repeated names: String
            /// Push the multi-platform images to the registry.
            optional --push
            /// Write an OCI archive per image under target/xtask/oci/ instead of loading.
            optional --oci
            optional --dry-run
            optional --no-cache
            optional --cache-export
            optional --pull
            optional --progress mode: String
            optional --builder name: String
            repeated --set kv: String
            optional --registry registry: String
            optional --version version: String
        }

        /// Print the resolved plan of a group or service without building: the commands, the
        /// environment the xtask sets, the build arguments and the bake definition.
        cmd print {
            /// A group or service (default: the `default` group).
            optional name: String
            optional --builder name: String
            repeated --set kv: String
            optional --registry registry: String
            optional --version version: String
        }

        /// Run BuildKit's own Dockerfile checks (`bake --call check`) on every target of the
        /// default, development and production groups, or of the named ones.
        cmd check {
            /// Services or bake groups (default: default, development, production).
            repeated names: String
        }

        /// Check this machine for everything a build needs; one line each, with a fix.
        cmd doctor {}

        /// Rebuild the commit an image names (its revision label) from a clean export of that
        /// commit, without cache, and compare the per-platform digests, layer by layer where
        /// they differ.
        cmd verify {
            /// A pushed image, e.g. 127.0.0.1:5000/contextcleanse-backend:0.4.0.
            required image: String
            /// Rebuild only these platforms (comma-separated; default: every one the image has).
            optional --platform platforms: String
        }

        /// The Docker engine: use the one that answers, or one of the project's private ones.
        cmd engine {
            /// Start a private engine: without flags only when no engine answers (idempotent).
            cmd up {
                /// `current` (Debian testing's Docker, the default) or `floor` (Debian stable's).
                optional --channel channel: String
                /// Keep images in the classic store instead of the containerd image store.
                optional --classic
            }
            /// Stop the named private engine, or every one this checkout started.
            cmd down {
                optional --channel channel: String
                optional --classic
            }
            /// Endpoint, channel and versions, image store, platforms, registry, binfmt.
            cmd status {}
            /// Print the exports that point a shell at a running private engine.
            cmd env {
                optional --channel channel: String
                optional --classic
            }
        }

        /// Show build reports: the last one, or a before/after comparison of two builds.
        cmd report {
            /// The last build (the default).
            optional --last
            /// Compare two builds, given as history ids (see `report --list`) or `last`, `last~1`.
            optional --compare
            /// List the builds in the history.
            optional --list
            /// Print JSON instead of a table.
            optional --json
            /// Build ids for --compare.
            repeated ids: String
        }

        /// Measure cold, warm, source-change, dependency-change and metadata-change builds.
        cmd bench {
            /// Services to measure (default: backend and frontend).
            repeated names: String
            /// Runs per scenario (default 3).
            optional --runs n: usize
        }

        /// Run every test suite: xtask unit tests, backend pytest, frontend node tests, hadolint,
        /// and the end-to-end tests on the real engine.
        cmd test {
            /// Skip the end-to-end tests (not allowed with CI=true).
            optional --no-e2e
            /// Only run end-to-end tests whose name contains this.
            optional --e2e-filter filter: String
        }
    }
}
