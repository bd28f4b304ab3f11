//! Unit tests of cache ownership and `du` (`ownership.rs`).

use super::*;

fn record(id: &str, parent: Option<&str>, kind: &str, description: &str) -> Record {
    Record {
        id: id.into(),
        parents: parent.map(|p| vec![p.to_string()]),
        kind: kind.into(),
        description: description.into(),
        size: 10,
        in_use: false,
    }
}

fn owner() -> Owner {
    let repos = ["contextcleanse-backend".to_string()].into();
    let kept = ["run", "wd", "copy", "gone"].map(String::from).into();
    Owner::new(vec!["contextcleanse".into(), "contextcleanse--".into()], kept, repos)
}

#[test]
fn only_the_projects_records_are_taken_by_namespace_or_kept_id_never_by_text() {
    let npm_ci = "mount / from exec /bin/sh -c set -eu;     npm ci";
    let records = vec![
        record("run", Some("base"), "regular", npm_ci),
        record("wd", Some("run"), "regular", "[app 2/3] WORKDIR /app"),
        record("copy", Some("wd"), "regular", "[linux/arm64 app 3/3] COPY app/ ./app/"),
        record(
            "ns",
            None,
            "exec.cachemount",
            "cached mount /root/.npm from exec /bin/sh -c npm ci with id \"contextcleanse//root/.npm\"",
        ),
        record(
            "bench",
            None,
            "exec.cachemount",
            "cached mount /x from exec y with id \"contextcleanse--bench-cold-12-0//x\"",
        ),
        // Another project's bench, which the old guess (`bench-cold-*`) took.
        record("f-bench", None, "exec.cachemount", "cached mount /x from exec y with id \"bench-cold-12-0//x\""),
        // Another project with the same Dockerfiles: the very same text on layers of its own, and
        // one built on ours; its cache mounts, an un-namespaced one, and a build context.
        record("f-run", Some("base"), "regular", npm_ci),
        record("f-copy", Some("copy"), "regular", "[app 3/3] COPY app/ ./app/"),
        record("f-ns", None, "exec.cachemount", "cached mount /c from exec echo with id \"/foreignns/c\""),
        record("f-like", None, "exec.cachemount", "cached mount /c from exec echo with id \"contextcleanse-other//c\""),
        record("ctx", None, "source.local", "local source for context"),
    ];
    let ours: Vec<String> = owner().records(&records).into_iter().collect();
    assert_eq!(ours, ["bench", "copy", "ns", "run", "wd"]);
}

#[test]
fn images_by_repository_or_by_title_when_untagged() {
    let image = |tags: &[&str], title: Option<&str>| Image {
        id: "sha256:0123456789abcdef".into(),
        tags: Some(tags.iter().map(|t| t.to_string()).collect()),
        labels: title.map(|t| [("org.opencontainers.image.title".to_string(), t.to_string())].into()),
        size: 1,
    };
    let images = vec![
        image(&["contextcleanse-backend:dev", "mine:1"], None),
        image(&["127.0.0.1:5000/contextcleanse-backend:1.2.3"], None),
        image(&[], Some("contextcleanse-backend")),
        image(&["foreignproj:1"], Some("contextcleanse-backend")),
        image(&["contextcleanse-backend-extra:1"], None),
        image(&[], Some("something-else")),
    ];
    let o = owner();
    let ours = o.images(&images);
    assert_eq!(ours.len(), 3);
    assert_eq!(o.own_tags(ours[0]), ["contextcleanse-backend:dev"], "a foreign tag on the same image stays");
    assert_eq!(
        crate::images::meta::short_name("127.0.0.1:5000/contextcleanse-backend:1.2.3"),
        "contextcleanse-backend"
    );
}
