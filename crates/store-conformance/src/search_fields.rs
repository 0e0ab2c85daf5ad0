//! The resource search per field: exact and prefix matches on each field, over resources whose
//! values sit right around each other's prefixes.

use std::sync::Arc;

use statehouse_core::model::Workspace;
use statehouse_core::store::Store;
use statehouse_core::store::search::{FieldMatch, MatchMode, ResourceSearch, SearchField};
use statehouse_core::tfstate::{IdentifyingAttributes, IndexKey, Mode};

use crate::search::{AWS, GOOGLE, addresses, indexed_write, instance, run, search_in, sorted};
use crate::{at, ensure, workspace, write};

/// Resources in two states whose values sit right around each other's prefixes.
pub(crate) async fn seed_fields(store: &dyn Store, ws: &Workspace) {
    let net = ensure(store, ws, "net").await;
    let app = ensure(store, ws, "app").await;
    let with = |id: &str, arn: Option<&str>, name: Option<&str>, link: Option<&str>| {
        IdentifyingAttributes {
            id: Some(id.into()),
            arn: arn.map(Into::into),
            name: name.map(Into::into),
            self_link: link.map(Into::into),
        }
    };
    let net_resources = vec![
        instance(
            "",
            "aws_instance",
            "web",
            Some(IndexKey::Int(0)),
            with("i-100", Some("arn:aws:ec2:i-100"), None, None),
        ),
        instance(
            "",
            "aws_instance",
            "web",
            Some(IndexKey::Int(1)),
            with("i-101", Some("arn:aws:ec2:i-101"), None, None),
        ),
        instance(
            "",
            "aws_instance_profile",
            "web",
            None,
            with("prof-1", None, Some("web-profile"), None),
        ),
        instance(
            "",
            "aws_instancf",
            "odd",
            None,
            with("odd-1", None, None, None),
        ),
        instance(
            "",
            "data.aws_ami",
            "ubuntu",
            None,
            with("ami-1", None, Some("ubuntu-focal"), None),
        ),
    ];
    let app_resources = vec![
        instance(
            "module.app[\"web\"]",
            "aws_s3_bucket",
            "logs",
            Some(IndexKey::Str("web".into())),
            with(
                "web-logs",
                Some("arn:aws:s3:::web-logs"),
                Some("web-logs"),
                None,
            ),
        ),
        instance(
            "module.app[\"web\"].module.vm[0]",
            "google_compute_instance",
            "vm",
            None,
            with(
                "projects/p/vm",
                None,
                Some("vm-1"),
                Some("https://compute/p/vm-1"),
            ),
        ),
        instance(
            "module.application",
            "aws_instance",
            "web2",
            None,
            with("i-200", None, None, None),
        ),
    ];
    let (net_version, app_version) = (format!("{}-net-1", ws.name), format!("{}-app-1", ws.name));
    write(
        store,
        ws,
        "net",
        &indexed_write(&net.id, &net_version, 1, at(10), net_resources),
    )
    .await;
    write(
        store,
        ws,
        "app",
        &indexed_write(&app.id, &app_version, 1, at(20), app_resources),
    )
    .await;
}

pub async fn search_matches_each_field_exactly_or_by_prefix(store: Arc<dyn Store>) {
    let ws = workspace(&*store, "ws").await;
    seed_fields(&*store, &ws).await;
    let cases: Vec<(SearchField, &str, MatchMode, Vec<&str>)> = vec![
        (
            SearchField::Type,
            "aws_instance",
            MatchMode::Exact,
            vec![
                "net:aws_instance.web[0]",
                "net:aws_instance.web[1]",
                "app:module.application.aws_instance.web2",
            ],
        ),
        (
            SearchField::Type,
            "aws_instance",
            MatchMode::Prefix,
            vec![
                "net:aws_instance.web[0]",
                "net:aws_instance.web[1]",
                "net:aws_instance_profile.web",
                "app:module.application.aws_instance.web2",
            ],
        ),
        (SearchField::Type, "aws_inst", MatchMode::Exact, vec![]),
        (
            SearchField::Type,
            "google",
            MatchMode::Prefix,
            vec!["app:module.app[\"web\"].module.vm[0].google_compute_instance.vm"],
        ),
        (
            SearchField::Name,
            "web",
            MatchMode::Exact,
            vec![
                "net:aws_instance.web[0]",
                "net:aws_instance.web[1]",
                "net:aws_instance_profile.web",
            ],
        ),
        (
            SearchField::Name,
            "web",
            MatchMode::Prefix,
            vec![
                "net:aws_instance.web[0]",
                "net:aws_instance.web[1]",
                "net:aws_instance_profile.web",
                "app:module.application.aws_instance.web2",
            ],
        ),
        (
            SearchField::Module,
            "",
            MatchMode::Exact,
            vec![
                "net:aws_instance.web[0]",
                "net:aws_instance.web[1]",
                "net:aws_instance_profile.web",
                "net:aws_instancf.odd",
                "net:data.aws_ami.ubuntu",
            ],
        ),
        (
            SearchField::Module,
            "module.app[\"web\"]",
            MatchMode::Exact,
            vec!["app:module.app[\"web\"].aws_s3_bucket.logs[\"web\"]"],
        ),
        (
            SearchField::Module,
            "module.app[\"web\"]",
            MatchMode::Prefix,
            vec![
                "app:module.app[\"web\"].aws_s3_bucket.logs[\"web\"]",
                "app:module.app[\"web\"].module.vm[0].google_compute_instance.vm",
            ],
        ),
        (
            SearchField::Module,
            "module.app",
            MatchMode::Prefix,
            vec![
                "app:module.app[\"web\"].aws_s3_bucket.logs[\"web\"]",
                "app:module.app[\"web\"].module.vm[0].google_compute_instance.vm",
                "app:module.application.aws_instance.web2",
            ],
        ),
        (
            SearchField::Provider,
            GOOGLE,
            MatchMode::Exact,
            vec!["app:module.app[\"web\"].module.vm[0].google_compute_instance.vm"],
        ),
        (
            SearchField::Provider,
            "provider[\"registry.terraform.io/hashicorp/g",
            MatchMode::Prefix,
            vec!["app:module.app[\"web\"].module.vm[0].google_compute_instance.vm"],
        ),
        (
            SearchField::Mode,
            "data",
            MatchMode::Exact,
            vec!["net:data.aws_ami.ubuntu"],
        ),
        (
            SearchField::Mode,
            "data",
            MatchMode::Prefix,
            vec!["net:data.aws_ami.ubuntu"],
        ),
        (SearchField::Id, "i-10", MatchMode::Exact, vec![]),
        (
            SearchField::Id,
            "i-10",
            MatchMode::Prefix,
            vec!["net:aws_instance.web[0]", "net:aws_instance.web[1]"],
        ),
        (
            SearchField::Id,
            "i-101",
            MatchMode::Exact,
            vec!["net:aws_instance.web[1]"],
        ),
        (
            SearchField::Arn,
            "arn:aws:s3:::web-logs",
            MatchMode::Exact,
            vec!["app:module.app[\"web\"].aws_s3_bucket.logs[\"web\"]"],
        ),
        (
            SearchField::Arn,
            "arn:aws:ec2:",
            MatchMode::Prefix,
            vec!["net:aws_instance.web[0]", "net:aws_instance.web[1]"],
        ),
        (
            SearchField::NameAttribute,
            "web-",
            MatchMode::Prefix,
            vec![
                "net:aws_instance_profile.web",
                "app:module.app[\"web\"].aws_s3_bucket.logs[\"web\"]",
            ],
        ),
        (
            SearchField::NameAttribute,
            "ubuntu-focal",
            MatchMode::Exact,
            vec!["net:data.aws_ami.ubuntu"],
        ),
        (
            SearchField::SelfLink,
            "https://compute/",
            MatchMode::Prefix,
            vec!["app:module.app[\"web\"].module.vm[0].google_compute_instance.vm"],
        ),
        (
            SearchField::SelfLink,
            "https://compute/",
            MatchMode::Exact,
            vec![],
        ),
        (
            SearchField::Any,
            "web-logs",
            MatchMode::Exact,
            vec!["app:module.app[\"web\"].aws_s3_bucket.logs[\"web\"]"],
        ),
        (
            SearchField::Any,
            "web",
            MatchMode::Prefix,
            vec![
                "net:aws_instance_profile.web",
                "app:module.app[\"web\"].aws_s3_bucket.logs[\"web\"]",
            ],
        ),
        (
            SearchField::Any,
            "vm-1",
            MatchMode::Exact,
            vec!["app:module.app[\"web\"].module.vm[0].google_compute_instance.vm"],
        ),
        (
            SearchField::Any,
            "arn:aws:ec2:i-100",
            MatchMode::Exact,
            vec!["net:aws_instance.web[0]"],
        ),
    ];
    for (field, value, mode, expected) in cases {
        let search = search_in(&[&ws], field, value, mode);
        assert_eq!(
            addresses(&*store, &search).await,
            sorted(&expected),
            "{field:?} {mode:?} {value:?}"
        );
    }

    // Several fields: all must match.
    let both = ResourceSearch::new(
        vec![ws.id.clone()],
        vec![
            FieldMatch {
                field: SearchField::Type,
                value: "aws_instance".into(),
            },
            FieldMatch {
                field: SearchField::Module,
                value: "module.app".into(),
            },
        ],
        MatchMode::Prefix,
        None,
        100,
    );
    assert_eq!(
        addresses(&*store, &both).await,
        sorted(&["app:module.application.aws_instance.web2"])
    );
    let typed_any = ResourceSearch::new(
        vec![ws.id.clone()],
        vec![
            FieldMatch {
                field: SearchField::Mode,
                value: "managed".into(),
            },
            FieldMatch {
                field: SearchField::Any,
                value: "i-1".into(),
            },
        ],
        MatchMode::Prefix,
        None,
        100,
    );
    assert_eq!(
        addresses(&*store, &typed_any).await,
        sorted(&["net:aws_instance.web[0]", "net:aws_instance.web[1]"])
    );

    // Hits carry everything the index keeps.
    let hit = run(
        &*store,
        &search_in(&[&ws], SearchField::Id, "web-logs", MatchMode::Exact),
    )
    .await
    .remove(0);
    assert_eq!(hit.mode, Mode::Managed);
    assert_eq!(hit.resource_type, "aws_s3_bucket");
    assert_eq!(hit.name, "logs");
    assert_eq!(hit.module, "module.app[\"web\"]");
    assert_eq!(hit.provider, AWS);
    assert_eq!(hit.index_key.as_deref(), Some("\"web\""));
    assert_eq!(hit.attributes.arn.as_deref(), Some("arn:aws:s3:::web-logs"));
    assert_eq!(hit.attributes.name.as_deref(), Some("web-logs"));
    assert_eq!(hit.attributes.self_link, None);
    assert_eq!(
        (hit.version_no, hit.appeared_version_no, hit.appeared_at),
        (1, 1, at(20))
    );
}
