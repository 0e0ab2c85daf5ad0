//! The OpenAPI document served at `/api/v1/openapi.json`: statehouse's own info block, its
//! security schemes, and besides the REST API the health endpoints and the Terraform/OpenTofu
//! `http` backend (described here by hand: one handler serves all its methods).

use utoipa::openapi::path::{
    HttpMethod, Operation, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, Ref, RefOr, Required, Response, ResponseBuilder, Type,
};
use utoipa::{Modify, OpenApi};

use super::ErrorBody;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "statehouse API",
        version = env!("CARGO_PKG_VERSION"),
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
        description = "Workspaces, states, versions, locks, history and resource search of a statehouse server, its audit log, event stream and outgoing webhooks, and scheduled PostgreSQL backups (databases, storage targets, notifiers, backups, restore, verification, health). \
            Authenticate with an API token as `Authorization: Bearer <token>` (or as the basic-auth password), \
            or log in at /api/v1/auth/login for a session cookie: then send the returned csrf_token as \
            `X-CSRF-Token` with every POST, PUT, PATCH and DELETE. \
            Listings answer `{\"items\": [...], \"next_cursor\": ...}`: pass `next_cursor` back as `cursor` for the next page. \
            State names contain slashes: URL-encode them in API paths (`env%2Fprod`). \
            Also described: the health endpoints and the Terraform/OpenTofu `http` state backend under /tf."
    ),
    paths(crate::health::healthz, crate::health::readyz),
    modifiers(&Security, &Backend),
    security(("token" = []), ("basic" = [])),
    components(schemas(ErrorBody))
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
    }
}

/// The Terraform/OpenTofu `http` backend at `/tf/{workspace}/{name}`. Terraform's default
/// lock methods `LOCK` and `UNLOCK` on the state address cannot be written in OpenAPI; they
/// take the same bodies and answers as POST and DELETE on `…/lock`.
struct Backend;

const STATE: &str = "/tf/{workspace}/{name}";
const LOCK: &str = "/tf/{workspace}/{name}/lock";

impl Modify for Backend {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let paths = &mut openapi.paths;
        paths.add_path_operation(STATE, vec![HttpMethod::Get], read_state());
        paths.add_path_operation(STATE, vec![HttpMethod::Post], write_state("tf_write_state"));
        paths.add_path_operation(STATE, vec![HttpMethod::Put], write_state("tf_put_state"));
        paths.add_path_operation(STATE, vec![HttpMethod::Delete], delete_state());
        paths.add_path_operation(LOCK, vec![HttpMethod::Post], lock_state());
        paths.add_path_operation(LOCK, vec![HttpMethod::Delete], unlock_state());
    }
}

fn backend_operation(id: &str, summary: &str, description: &str) -> OperationBuilder {
    let workspace = ParameterBuilder::new()
        .name("workspace")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("workspace name"))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)));
    let name = ParameterBuilder::new()
        .name("name")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(
            "state name; it may have `/`-separated segments (`prod/network`), written as they are",
        ))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)));
    OperationBuilder::new()
        .operation_id(Some(id))
        .tag("terraform backend")
        .summary(Some(summary))
        .description(Some(description))
        .parameter(workspace)
        .parameter(name)
        .response("401", text_response("no or unknown credentials"))
        .response("403", text_response("the token's role does not allow this"))
}

fn text_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "text/plain",
        ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build(),
    )
}

fn json_response(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
            .build(),
    )
}

fn lock_info_body(required: bool) -> RequestBodyBuilder {
    RequestBodyBuilder::new()
        .description(Some(
            "Terraform's LockInfo: {\"ID\", \"Operation\", \"Info\", \"Who\", \"Version\", \"Created\", \"Path\"}",
        ))
        .required(Some(if required {
            Required::True
        } else {
            Required::False
        }))
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                .build(),
        )
}

fn read_state() -> Operation {
    backend_operation(
        "tf_read_state",
        "Read a state",
        "The current version's body (with `Content-MD5`). An `outputs` token gets the state reduced to its outputs.",
    )
    .response("200", json_response("the state"))
    .response("204", ResponseBuilder::new().description("no state yet"))
    .build()
}

fn write_state(id: &str) -> Operation {
    let lock_id = ParameterBuilder::new()
        .name("ID")
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some("the lock ID the client holds"))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)));
    let md5 = ParameterBuilder::new()
        .name("Content-MD5")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some("base64 MD5 of the body; checked when sent"))
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)));
    backend_operation(
        id,
        "Write a state",
        "Stores a new version (a byte-identical write adds nothing). POST and PUT do the same.",
    )
    .parameter(lock_id)
    .parameter(md5)
    .request_body(Some(
        RequestBodyBuilder::new()
            .required(Some(Required::True))
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                    .build(),
            )
            .build(),
    ))
    .response("200", ResponseBuilder::new().description("stored"))
    .response(
        "409",
        text_response("serial not above the stored one, or another lineage"),
    )
    .response("413", text_response("larger than max_state_bytes"))
    .response(
        "423",
        json_response("locked by another client: the holder's LockInfo"),
    )
    .build()
}

fn delete_state() -> Operation {
    backend_operation(
        "tf_delete_state",
        "Delete a state",
        "A soft delete: the versions stay restorable until an admin purges them.",
    )
    .response("200", ResponseBuilder::new().description("deleted"))
    .response("423", json_response("locked: the holder's LockInfo"))
    .build()
}

fn lock_state() -> Operation {
    backend_operation(
        "tf_lock_state",
        "Lock a state",
        "Also `LOCK` on the state address (Terraform's default). A repeated LOCK with the same ID succeeds.",
    )
    .request_body(Some(lock_info_body(true).build()))
    .response("200", ResponseBuilder::new().description("locked"))
    .response("423", json_response("locked by another client: the holder's LockInfo"))
    .build()
}

fn unlock_state() -> Operation {
    backend_operation(
        "tf_unlock_state",
        "Unlock a state",
        "Also `UNLOCK` on the state address (Terraform's default). An empty body (or only the ID) force-unlocks, for callers allowed to.",
    )
    .request_body(Some(lock_info_body(false).build()))
    .response("200", ResponseBuilder::new().description("unlocked"))
    .response("423", json_response("locked by another client: the holder's LockInfo"))
    .build()
}

/// Declares on every REST operation the errors any of them may answer, so that routes list
/// only their own (a 409, a 423, an explained 401): 400 for input that does not fit (path,
/// query or body), 415 where a body is read, 404 where the path names something, 503 while
/// the store or a service it needs is unavailable, and — unless the operation is public —
/// 401 and 403. A code a route declares itself is left as the route says.
pub(super) fn add_common_errors(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        if !path.starts_with("/api/v1/") {
            continue;
        }
        let names_something = path.contains('{');
        for operation in operations_mut(item) {
            let public = operation
                .security
                .as_ref()
                .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
            let mut common = vec![("400", "invalid input: the message names the problem")];
            if operation.request_body.is_some() {
                common.push(("415", "the body is declared as something other than JSON"));
            }
            if names_something {
                common.push(("404", "it does not exist, or the caller may not see it"));
            }
            if !public {
                common.push(("401", "no, unknown, expired or revoked credentials"));
                common.push(("403", "the caller's role does not allow this"));
            }
            common.push((
                "503",
                "the store or a service it needs is unavailable; retry after Retry-After",
            ));
            for (code, description) in common {
                operation
                    .responses
                    .responses
                    .entry(code.to_owned())
                    .or_insert_with(|| RefOr::T(error_response(description)));
            }
        }
    }
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::<utoipa::openapi::schema::Schema>::Ref(
                    Ref::from_schema_name("ErrorBody"),
                )))
                .build(),
        )
        .build()
}
