//! The Redfish subset standard bare-metal tools (Ironic, bmclib, MAAS) drive: ServiceRoot,
//! the Systems collection, one ComputerSystem per outlet with its PowerState, and the
//! `ComputerSystem.Reset` action. The shapes follow the DMTF schemas; this module is their one
//! home in the code base.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};

use super::{ApiError, AppState, authenticate};
use crate::outlet::PowerState;
use crate::power::{Action, OutletView, PowerError};

pub const ROOT: &str = "/redfish/v1";
pub const SYSTEMS: &str = "/redfish/v1/Systems";
/// The ResetType values powerd offers, and what each one does.
pub const RESET_TYPES: [(&str, Action); 4] = [
    ("On", Action::On),
    ("ForceOff", Action::Off),
    ("ForceRestart", Action::Cycle),
    ("PowerCycle", Action::Cycle),
];
const MESSAGE_REGISTRY: &str = "Base.1.8";
const ODATA_VERSION: HeaderName = HeaderName::from_static("odata-version");

/// An error in Redfish's shape: `{"error": {"code", "message", "@Message.ExtendedInfo"}}`.
pub struct RedfishError(pub ApiError);

impl From<ApiError> for RedfishError {
    fn from(e: ApiError) -> Self {
        RedfishError(e)
    }
}

impl From<PowerError> for RedfishError {
    fn from(e: PowerError) -> Self {
        RedfishError(e.into())
    }
}

impl IntoResponse for RedfishError {
    fn into_response(self) -> Response {
        let e = self.0;
        let message_id = match e.code {
            "unauthorized" => "NoValidSession",
            "outlet_not_found" => "ResourceNotFound",
            "not_found" => "ResourceMissingAtURI",
            "method_not_allowed" => "OperationNotAllowed",
            "invalid_body" => "MalformedJSON",
            "reset_type_missing" => "ActionParameterMissing",
            "reset_type_not_allowed" => "ActionParameterValueNotInList",
            _ => "InternalError",
        };
        let message_id = format!("{MESSAGE_REGISTRY}.{message_id}");
        let body = json!({
            "error": {
                "code": message_id,
                "message": e.message,
                "@Message.ExtendedInfo": [{
                    "@odata.type": "#Message.v1_1_1.Message",
                    "MessageId": message_id,
                    "Message": e.message,
                    "MessageSeverity": if e.status.is_server_error() { "Critical" } else { "Warning" },
                    "Resolution": "See the message; powerd's stable error code is in Oem.PiFoundry.Code.",
                    "Oem": {"PiFoundry": {"Code": e.code}},
                }],
            }
        });
        with_odata(e.into_response_with(body))
    }
}

fn with_odata(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(ODATA_VERSION, HeaderValue::from_static("4.0"));
    resp
}

fn redfish_json(value: Value) -> Response {
    with_odata(axum::Json(value).into_response())
}

/// Read access (authenticated unless reads are open).
pub struct Reader;

/// Permission to reset (always authenticated).
pub struct Caller(pub String);

impl FromRequestParts<AppState> for Reader {
    type Rejection = RedfishError;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, RedfishError> {
        authenticate(app, parts, false).map_err(ApiError::from)?;
        Ok(Reader)
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = RedfishError;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, RedfishError> {
        let who = authenticate(app, parts, true).map_err(ApiError::from)?;
        Ok(Caller(who.expect("mutations are always authenticated")))
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/redfish", get(versions))
        .route("/redfish/", get(versions))
        .route(ROOT, get(service_root))
        .route("/redfish/v1/", get(service_root))
        .route(SYSTEMS, get(systems))
        .route("/redfish/v1/Systems/", get(systems))
        .route("/redfish/v1/Systems/{id}", get(system))
        .route(
            "/redfish/v1/Systems/{id}/Actions/ComputerSystem.Reset",
            post(reset),
        )
}

async fn versions() -> Response {
    redfish_json(json!({"v1": "/redfish/v1/"}))
}

/// The service root is readable without credentials, as Redfish requires.
async fn service_root() -> Response {
    redfish_json(json!({
        "@odata.id": ROOT,
        "@odata.type": "#ServiceRoot.v1_15_0.ServiceRoot",
        "Id": "RootService",
        "Name": "PiFoundry powerd",
        "RedfishVersion": "1.15.0",
        "Product": "PiFoundry powerd",
        "Vendor": "PiFoundry",
        "Systems": {"@odata.id": SYSTEMS},
    }))
}

async fn systems(_: Reader, State(app): State<AppState>) -> Response {
    let members: Vec<Value> = app
        .power
        .ids()
        .map(|id| json!({"@odata.id": format!("{SYSTEMS}/{id}")}))
        .collect();
    redfish_json(json!({
        "@odata.id": SYSTEMS,
        "@odata.type": "#ComputerSystemCollection.ComputerSystemCollection",
        "Name": "Computer System Collection",
        "Members@odata.count": members.len(),
        "Members": members,
    }))
}

fn computer_system(o: &OutletView) -> Value {
    let uri = format!("{SYSTEMS}/{}", o.id);
    json!({
        "@odata.id": uri,
        "@odata.type": "#ComputerSystem.v1_20_0.ComputerSystem",
        "Id": o.id,
        "Name": o.id,
        "Description": o.description.clone().unwrap_or_else(|| format!("Raspberry Pi on outlet {} ({})", o.id, o.backend)),
        "SystemType": "Physical",
        "PowerState": match o.state { PowerState::On => "On", PowerState::Off => "Off" },
        "Status": {"State": "Enabled", "Health": "OK"},
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": format!("{uri}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues": RESET_TYPES.map(|(name, _)| name),
            }
        },
    })
}

async fn system(
    _: Reader,
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, RedfishError> {
    let o = app.power.get(&id).ok_or(PowerError::UnknownOutlet(id))?;
    Ok(redfish_json(computer_system(&o)))
}

async fn reset(
    Caller(who): Caller,
    State(app): State<AppState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, RedfishError> {
    app.power
        .get(&id)
        .ok_or_else(|| PowerError::UnknownOutlet(id.clone()))?;
    let body: Value = super::v1::parse_body(&body)?;
    let allowed = RESET_TYPES.map(|(name, _)| name).join(", ");
    let reset_type = match body.get("ResetType") {
        None => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "reset_type_missing",
                format!("the action needs the parameter ResetType (one of {allowed})"),
            )
            .into());
        }
        Some(v) => v,
    };
    let action = reset_type
        .as_str()
        .and_then(|t| RESET_TYPES.iter().find(|(name, _)| *name == t))
        .map(|(_, a)| *a)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "reset_type_not_allowed",
                format!("ResetType {reset_type} is not supported; use one of {allowed}"),
            )
        })?;
    app.power.apply(&id, action, &who).await?;
    Ok(with_odata(StatusCode::NO_CONTENT.into_response()))
}
