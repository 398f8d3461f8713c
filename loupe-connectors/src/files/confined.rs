//! The only object store a files datasource's DataFusion session can reach:
//! read-only, and confined to the datasource's root directory.
//!
//! Table discovery already refuses paths that leave the root, but a file can
//! be replaced by a symlink between discovery and the read, and a folder
//! table lists files DataFusion finds on its own. So every read and listing
//! checks, at the moment it happens, that the real (symlink-resolved) path is
//! inside the root.

use loupe_core::codes;
use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::object_store::ObjectStoreRegistry;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use url::Url;

/// Scheme and host under which the confined store is registered.
pub(super) const ROOT_URL: &str = "loupe-files://root/";

/// A read-only [`LocalFileSystem`] that refuses anything resolving outside
/// `root`.
#[derive(Debug)]
pub(super) struct ConfinedStore {
    root: PathBuf,
    inner: LocalFileSystem,
}

impl ConfinedStore {
    /// `root` must be canonical (absolute, symlinks resolved).
    pub(super) fn new(root: PathBuf) -> Result<Self> {
        let inner = LocalFileSystem::new_with_prefix(&root)?;
        Ok(Self { root, inner })
    }

    fn check(&self, location: &Path) -> Result<()> {
        let fs_path = self.root.join(location.as_ref());
        match std::fs::canonicalize(&fs_path) {
            Ok(real) if real.starts_with(&self.root) => Ok(()),
            Ok(_) => Err(outside(location)),
            // Missing files are reported by the inner store as not found.
            Err(_) => Ok(()),
        }
    }

    fn inside(&self, meta: &ObjectMeta) -> bool {
        self.check(&meta.location).is_ok()
    }
}

fn outside(location: &Path) -> object_store::Error {
    object_store::Error::PermissionDenied {
        path: location.to_string(),
        source: "the path resolves outside the datasource's root".into(),
    }
}

fn read_only() -> object_store::Error {
    object_store::Error::NotSupported {
        source: "the files datasource is read-only".into(),
    }
}

impl fmt::Display for ConfinedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConfinedStore({})", self.root.display())
    }
}

#[async_trait]
impl ObjectStore for ConfinedStore {
    async fn put_opts(&self, _: &Path, _: PutPayload, _: PutOptions) -> Result<PutResult> {
        Err(read_only())
    }

    async fn put_multipart_opts(
        &self,
        _: &Path,
        _: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        Err(read_only())
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check(location)?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.check(location)?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        locations.map(|_| Err(read_only())).boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        if let Some(p) = prefix
            && let Err(e) = self.check(p)
        {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        let root = self.root.clone();
        self.inner
            .list(prefix)
            .try_filter(move |meta| futures::future::ready(resolves_inside(&root, &meta.location)))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        if let Some(p) = prefix {
            self.check(p)?;
        }
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        listed.objects.retain(|meta| self.inside(meta));
        listed
            .common_prefixes
            .retain(|p| resolves_inside(&self.root, p));
        Ok(listed)
    }

    async fn copy_opts(&self, _: &Path, _: &Path, _: CopyOptions) -> Result<()> {
        Err(read_only())
    }
}

fn resolves_inside(root: &FsPath, location: &Path) -> bool {
    std::fs::canonicalize(root.join(location.as_ref())).is_ok_and(|real| real.starts_with(root))
}

/// An object store registry that knows one store: the confined root. Any
/// other URL (`file:///etc`, `s3://…`, `http://…`) is refused.
#[derive(Debug)]
pub(super) struct ConfinedRegistry {
    store: Arc<dyn ObjectStore>,
}

impl ConfinedRegistry {
    pub(super) fn new(store: Arc<dyn ObjectStore>) -> Self {
        Self { store }
    }
}

impl ObjectStoreRegistry for ConfinedRegistry {
    fn register_store(
        &self,
        _url: &Url,
        _store: Arc<dyn ObjectStore>,
    ) -> Option<Arc<dyn ObjectStore>> {
        // Nothing else may be reached from a files datasource; registering
        // is a no-op and lookups of other URLs keep failing.
        None
    }

    fn get_store(&self, url: &Url) -> DfResult<Arc<dyn ObjectStore>> {
        if url.scheme() == "loupe-files" && url.host_str() == Some("root") {
            Ok(self.store.clone())
        } else {
            Err(DataFusionError::External(Box::new(
                loupe_core::Error::refused(
                    codes::FILES_OUTSIDE_ROOT,
                    format!(
                        "{}:// is outside the datasource's root; the files datasource reads only the tables under its root",
                        url.scheme()
                    ),
                ),
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use object_store::ObjectStoreExt;

    /// A file swapped for a symlink after discovery is still refused at
    /// the moment it is read.
    #[tokio::test]
    async fn reads_through_links_that_leave_the_root_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "top secret").unwrap();
        std::fs::write(root.path().join("fine.csv"), "a\n1\n").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.path().join("link.csv"))
            .unwrap();
        let store = ConfinedStore::new(std::fs::canonicalize(root.path()).unwrap()).unwrap();

        let fine = store.get(&Path::from("fine.csv")).await.unwrap();
        assert_eq!(fine.bytes().await.unwrap().as_ref(), b"a\n1\n");
        let err = store.get(&Path::from("link.csv")).await.unwrap_err();
        assert!(
            matches!(err, object_store::Error::PermissionDenied { .. }),
            "{err}"
        );
        let err = store
            .get_range(&Path::from("link.csv"), 0..3)
            .await
            .unwrap_err();
        assert!(
            matches!(err, object_store::Error::PermissionDenied { .. }),
            "{err}"
        );

        let listed: Vec<String> = store
            .list(None)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(listed, ["fine.csv"]);
    }

    #[tokio::test]
    async fn the_store_never_writes() {
        let root = tempfile::tempdir().unwrap();
        let store = ConfinedStore::new(std::fs::canonicalize(root.path()).unwrap()).unwrap();
        let err = store
            .put(&Path::from("new.csv"), "x".into())
            .await
            .unwrap_err();
        assert!(
            matches!(err, object_store::Error::NotSupported { .. }),
            "{err}"
        );
        assert!(store.put_multipart(&Path::from("new.csv")).await.is_err());
        assert!(!root.path().join("new.csv").exists());
    }

    #[test]
    fn the_registry_knows_only_the_root() {
        let root = tempfile::tempdir().unwrap();
        let store = ConfinedStore::new(std::fs::canonicalize(root.path()).unwrap()).unwrap();
        let registry = ConfinedRegistry::new(Arc::new(store));
        assert!(registry.get_store(&Url::parse(ROOT_URL).unwrap()).is_ok());
        for other in ["file:///etc/", "s3://bucket/", "http://example.com/"] {
            assert!(
                registry.get_store(&Url::parse(other).unwrap()).is_err(),
                "{other}"
            );
        }
    }
}
