# The one graph of ContextCleanse's images. `cargo xtask` reads it through
# `docker buildx bake --print` and sets the variables below; it never restates targets in Rust.
# It also works on its own: `docker buildx bake --print production`.

variable "REGISTRY" {
  # Registry for pushed images and registry cache, e.g. 127.0.0.1:5000 (empty: local only).
  default = ""
}

variable "VERSION" {
  default = "0.0.0-dev"
}

variable "VERSION_TAGS" {
  # Comma-separated tags for release images; the xtask derives X.Y.Z, X.Y, X and latest.
  default = "${VERSION}"
}

variable "GIT_COMMIT" {
  default = "unknown"
}

variable "BUILD_DATE" {
  default = "unknown"
}

variable "NPM_VERSION" {
  # The frontend's npm pin; the xtask passes package.json's packageManager version.
  default = "11.5.2"
}

variable "PYTHON_IMAGE" {
  default = "python:3.11-slim"
}

variable "NODE_IMAGE" {
  default = "node:22-alpine"
}

variable "CACHE_DIR" {
  # Local build cache (mode=max keeps the deps and builder stages, which inline cache cannot).
  default = "target/buildx-cache"
}

variable "CACHE_EXPORT" {
  # Non-empty: export the mode=max cache (the xtask sets it for --cache-export, CI=true and a
  # configured registry). Empty: the engine's own layer cache serves rebuilds, nothing is written.
  default = ""
}

variable "SOURCE_URL" {
  # The repository's public URL, recorded in the source label (empty: no source recorded). The
  # mode=min provenance keeps no build arguments: its source and revision are buildx's git info.
  default = "https://github.com/contextcleanse/contextcleanse"
}

variable "SBOM_GENERATOR" {
  # The image BuildKit runs to make the production images' SBOMs (`type=sbom` attestations):
  # the target sbom-generator below, which `cargo xtask production` and `multiplatform` build
  # when the engine lacks it and name with `--set TARGET.attest=type=sbom,generator=...`.
  default = "localhost/contextcleanse-sbom:dev"
}

variable "CA_BUNDLE" {
  # The host's CA bundle, given to the steps that download as the secret `cacert`.
  default = ""
}

function "image" {
  params = [name, tag]
  result = REGISTRY == "" ? "contextcleanse-${name}:${tag}" : "${REGISTRY}/contextcleanse-${name}:${tag}"
}

function "cache_from" {
  params = [name]
  result = concat(
    ["type=local,src=${CACHE_DIR}/${name}"],
    REGISTRY == "" ? [] : ["type=registry,ref=${REGISTRY}/contextcleanse-${name}:buildcache"]
  )
}

# mode=max keeps the dependency stages, the part worth sharing; zstd because it exported the
# frontend's cache in 7 s against gzip's 21 s, and smaller (README, "The local build cache").
function "cache_to" {
  params = [name]
  result = CACHE_EXPORT == "" ? [] : REGISTRY == "" ? ["type=local,dest=${CACHE_DIR}/${name},mode=max,compression=zstd"] : [
    "type=registry,ref=${REGISTRY}/contextcleanse-${name}:buildcache,mode=max,compression=zstd,ignore-error=true"
  ]
}

group "default" {
  targets = ["backend", "frontend"]
}

group "development" {
  targets = ["backend-development", "frontend-development"]
}

group "production" {
  targets = ["backend-production", "frontend-production"]
}

group "multiplatform" {
  targets = ["backend-multiplatform", "frontend-multiplatform"]
}

# Every group, so that one `bake --print all` shows the whole graph.
group "all" {
  targets = ["default", "development", "production", "multiplatform"]
}

target "_common" {
  args = {
    VERSION     = VERSION
    GIT_COMMIT  = GIT_COMMIT
    BUILD_DATE  = BUILD_DATE
    SOURCE_URL  = SOURCE_URL
  }
  secret = CA_BUNDLE == "" ? [] : ["id=cacert,src=${CA_BUNDLE}"]
}

target "backend" {
  inherits   = ["_common"]
  context    = "backend"
  dockerfile = "Dockerfile"
  target     = "app"
  args = {
    PYTHON_IMAGE = PYTHON_IMAGE
  }
  tags       = [image("backend", "dev")]
  cache-from = cache_from("backend")
  cache-to   = cache_to("backend")
}

target "frontend" {
  inherits   = ["_common"]
  context    = "frontend"
  dockerfile = "Dockerfile"
  target     = "production"
  args = {
    NODE_IMAGE  = NODE_IMAGE
    NPM_VERSION = NPM_VERSION
  }
  tags       = [image("frontend", "dev")]
  cache-from = cache_from("frontend")
  cache-to   = cache_to("frontend")
}

# The backend with its interactive API docs on; `backend` (and production) serve none.
target "backend-development" {
  inherits = ["backend"]
  target   = "development"
  tags     = [image("backend", "development")]
}

target "frontend-development" {
  inherits = ["frontend"]
  target   = "development"
  tags     = [image("frontend", "development")]
}

target "backend-production" {
  inherits = ["backend"]
  tags     = [for t in split(",", VERSION_TAGS) : image("backend", t)]
  attest   = ["type=provenance,mode=min"]
}

target "frontend-production" {
  inherits = ["frontend"]
  tags     = [for t in split(",", VERSION_TAGS) : image("frontend", t)]
  attest   = ["type=provenance,mode=min"]
}

target "backend-multiplatform" {
  inherits  = ["backend-production"]
  platforms = ["linux/amd64", "linux/arm64"]
}

target "frontend-multiplatform" {
  inherits  = ["frontend-production"]
  platforms = ["linux/amd64", "linux/arm64"]
}

# The SBOM generator BuildKit runs for `type=sbom,generator=...` attestations (its default,
# docker/buildkit-syft-scanner, cannot be pulled where no registry is reachable). Loaded into
# the engine, which BuildKit then resolves without a pull. On its own:
# `docker buildx bake --load sbom-generator`, then `--sbom=generator=localhost/contextcleanse-sbom:dev`.
target "sbom-generator" {
  context    = "sbom"
  dockerfile = "Dockerfile"
  args = {
    PYTHON_IMAGE = PYTHON_IMAGE
  }
  tags = [SBOM_GENERATOR]
}
