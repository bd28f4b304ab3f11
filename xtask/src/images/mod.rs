//! What the builds make and consume as images: the bake file as buildx resolves it (`bake`), build
//! metadata and tags (`meta`), stand-in base images (`standin`, `standin_platforms`, `standin_share`), OCI archives
//! (`oci`), SBOMs (`sbom`), signatures (`signing`, keyless: `keyless`) and checks of a pushed image (`verify`).

pub mod bake;
pub(crate) mod bake_kept;
pub(crate) mod bases;
pub(crate) mod keyless;
pub mod meta;
pub mod oci;
pub mod sbom;
pub mod signing;
pub mod standin;
pub(crate) mod standin_platforms;
pub(crate) mod standin_records;
pub(crate) mod standin_share;
pub mod verify;
