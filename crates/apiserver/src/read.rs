//! `get` and `list`: point reads from the store (or the cache for `resourceVersion=0`) and
//! lists from the watch cache (consistent by default) or, for continued and exact-revision
//! lists, from the store at the list's revision.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use berth_api::{FieldSelector, LabelSelector};
use berth_store::{ListRequest, Revision};
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{Value, json};

use crate::cache::CachedObject;
use crate::error::{ApiError, Result};
use crate::handler::{Ctx, json_bytes, json_response, object_response};
use crate::negotiate::Output;

pub async fn get(ctx: Ctx) -> Result<Response> {
    let name = ctx.name().to_string();
    let obj = read_object(
        &ctx,
        &name,
        ctx.query.resource_version.as_deref() == Some("0"),
    )
    .await?
    .ok_or_else(|| ctx.not_found(&name))?;
    let obj = crate::versions::from_storage(&ctx.res, &ctx.req.version, obj)?;
    object_response(&ctx, StatusCode::OK, &obj)
}

/// Reads one object in its storage version: from the cache when allowed, else from the store.
pub async fn read_object(ctx: &Ctx, name: &str, from_cache: bool) -> Result<Option<Value>> {
    let key = ctx.key(name);
    if from_cache {
        let rc = ctx.state.cache.resource(&ctx.res.key_prefix());
        return Ok(rc.get(&key).map(|o| o.value()));
    }
    match ctx.state.store.get(&key).await? {
        Some(kv) => Ok(Some(crate::codec::decode_stored(
            &kv.value,
            kv.mod_revision,
        )?)),
        None => Ok(None),
    }
}

/// Selectors of a list or watch, validated against what the resource supports.
pub struct Filter {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Filter {
    pub fn from_ctx(ctx: &Ctx) -> Result<Filter> {
        let labels = match &ctx.query.label_selector {
            Some(s) => LabelSelector::parse(s)
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?,
            None => LabelSelector::everything(),
        };
        let fields = match &ctx.query.field_selector {
            Some(s) => FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => FieldSelector::default(),
        };
        for r in &fields.requirements {
            let ok = if ctx.res.custom {
                r.field == "metadata.name" || r.field == "metadata.namespace"
            } else {
                berth_api::meta::is_selectable(&ctx.res.group, &ctx.res.plural, &r.field)
            };
            if !ok {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {}",
                    r.field
                )));
            }
        }
        Ok(Filter { labels, fields })
    }

    pub fn matches(&self, o: &CachedObject) -> bool {
        self.labels.matches_json(o.labels.as_ref()) && self.fields.matches(|f| o.field(f))
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ContinueToken {
    rv: Revision,
    start: String,
}

fn encode_continue(rv: Revision, start: &str) -> String {
    let t = serde_json::to_vec(&ContinueToken {
        rv,
        start: start.to_string(),
    })
    .unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t)
}

fn decode_continue(token: &str, prefix: &str) -> Result<ContinueToken> {
    let bad =
        || ApiError::bad_request("continue key is not valid: the continue token is malformed");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let t: ContinueToken = serde_json::from_slice(&raw).map_err(|_| bad())?;
    if !t.start.starts_with(prefix) {
        return Err(bad());
    }
    Ok(t)
}

/// One page of a list: the objects, the revision they were read at, and the continue token.
pub struct Page {
    pub items: Vec<Arc<CachedObject>>,
    pub revision: Revision,
    pub continue_token: Option<String>,
}

/// Reads a page of the collection addressed by `ctx` with the request's selectors,
/// resourceVersion semantics, `limit` and `continue`.
pub async fn read_page(ctx: &Ctx, filter: &Filter) -> Result<Page> {
    let prefix = ctx.collection_prefix();
    let limit = ctx.query.limit;
    let st = &ctx.state;
    let rc = st.cache.resource(&ctx.res.key_prefix());

    // Continued lists and exact-revision lists read the store at that revision.
    let exact = match (
        &ctx.query.continue_token,
        ctx.query.resource_version_match.as_deref(),
    ) {
        (Some(token), _) => {
            if ctx.query.resource_version.is_some() {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let t = decode_continue(token, &prefix)?;
            Some((t.rv, Some(t.start)))
        }
        (None, Some("Exact")) => {
            let rv = parse_rv(ctx.query.resource_version.as_deref())?.ok_or_else(|| {
                ApiError::bad_request("resourceVersionMatch=Exact requires a resourceVersion")
            })?;
            Some((rv, None))
        }
        (None, Some("NotOlderThan")) | (None, None) => None,
        (None, Some(other)) => {
            return Err(ApiError::bad_request(format!(
                "unsupported resourceVersionMatch {other:?}: must be Exact or NotOlderThan"
            )));
        }
    };
    if let Some((rv, start)) = exact {
        return read_store_page(ctx, filter, &prefix, rv, start, limit).await;
    }

    match ctx.query.resource_version.as_deref() {
        Some("0") => {}
        None => {
            let current = st.store.current_revision().await?;
            if !st.cache.wait_for(current, Duration::from_secs(3)).await {
                return read_store_page(ctx, filter, &prefix, 0, None, limit).await;
            }
        }
        Some(v) => {
            let rv = parse_rv(Some(v))?.unwrap_or(0);
            if !st.cache.wait_for(rv, Duration::from_secs(3)).await {
                return Err(ApiError::Timeout {
                    message: format!(
                        "Too large resource version: {rv}, current: {}",
                        st.cache.revision()
                    ),
                });
            }
        }
    }
    let (items, more, revision) = rc.list(&prefix, None, limit, |o| filter.matches(o));
    let continue_token = if more {
        items.last().map(|o| encode_continue(revision, &o.key))
    } else {
        None
    };
    Ok(Page {
        items,
        revision,
        continue_token,
    })
}

async fn read_store_page(
    ctx: &Ctx,
    filter: &Filter,
    prefix: &str,
    revision: Revision,
    start_after: Option<String>,
    limit: usize,
) -> Result<Page> {
    let selectable = if ctx.res.custom {
        &[][..]
    } else {
        berth_api::meta::selectable_fields(&ctx.res.group, &ctx.res.plural)
    };
    let mut items = Vec::new();
    let mut start = start_after;
    let mut read_at = revision;
    loop {
        let page = ctx
            .state
            .store
            .list(ListRequest {
                prefix: prefix.to_string(),
                start_after: start.clone(),
                revision: read_at,
                limit: if limit > 0 { limit.max(64) } else { 0 },
            })
            .await
            .map_err(|e| {
                if e.is_compacted() {
                    ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
                } else {
                    e.into()
                }
            })?;
        read_at = page.revision;
        let n = page.items.len();
        for kv in page.items {
            start = Some(kv.key.clone());
            let Some(o) = CachedObject::decode(&kv.key, &kv.value, kv.mod_revision, selectable)
            else {
                continue;
            };
            if filter.matches(&o) {
                if limit > 0 && items.len() == limit {
                    let last: &Arc<CachedObject> = items.last().expect("limit > 0");
                    return Ok(Page {
                        continue_token: Some(encode_continue(read_at, &last.key)),
                        items,
                        revision: read_at,
                    });
                }
                items.push(Arc::new(o));
            }
        }
        if !page.more || n == 0 {
            return Ok(Page {
                items,
                revision: read_at,
                continue_token: None,
            });
        }
    }
}

fn parse_rv(v: Option<&str>) -> Result<Option<Revision>> {
    match v {
        None => Ok(None),
        Some(s) => s
            .parse::<Revision>()
            .map(Some)
            .map_err(|_| ApiError::bad_request(format!("invalid resource version {s:?}"))),
    }
}

pub async fn list(ctx: Ctx) -> Result<Response> {
    let filter = Filter::from_ctx(&ctx)?;
    let page = read_page(&ctx, &filter).await?;
    let output = crate::negotiate::output(&ctx.headers)?;
    match output {
        Output::Table => {
            let objs: Vec<Value> = page
                .items
                .iter()
                .map(|o| crate::versions::from_storage(&ctx.res, &ctx.req.version, o.value()))
                .collect::<Result<_>>()?;
            let table = crate::table::table_for(
                &ctx,
                &objs,
                Some(page.revision),
                page.continue_token.as_deref(),
            );
            Ok(json_response(StatusCode::OK, &table))
        }
        Output::PartialMetadata => {
            let items: Vec<Value> = page
                .items
                .iter()
                .map(|o| crate::table::partial_metadata(&o.value()))
                .collect();
            let mut meta = json!({"resourceVersion": page.revision.to_string()});
            if let Some(c) = &page.continue_token {
                meta["continue"] = json!(c);
            }
            Ok(json_response(
                StatusCode::OK,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}),
            ))
        }
        Output::Json | Output::Yaml => {
            let converted = ctx.req.version != ctx.res.storage_version;
            let mut head = json!({
                "kind": ctx.res.list_kind,
                "apiVersion": ctx.api_version(),
                "metadata": {"resourceVersion": page.revision.to_string()},
            });
            if let Some(c) = &page.continue_token {
                head["metadata"]["continue"] = json!(c);
            }
            if output == Output::Yaml || converted {
                let items: Vec<Value> = page
                    .items
                    .iter()
                    .map(|o| crate::versions::from_storage(&ctx.res, &ctx.req.version, o.value()))
                    .collect::<Result<_>>()?;
                head["items"] = Value::Array(items);
                return object_list_response(&ctx, &head);
            }
            // Fast path: splice the cached JSON of each item into the list without decoding.
            let head_bytes = serde_json::to_vec(&head).map_err(ApiError::internal)?;
            let mut out = BytesMut::with_capacity(
                head_bytes.len() + page.items.iter().map(|o| o.json.len() + 1).sum::<usize>() + 16,
            );
            out.put_slice(&head_bytes[..head_bytes.len() - 1]);
            out.put_slice(b",\"items\":[");
            for (i, o) in page.items.iter().enumerate() {
                if i > 0 {
                    out.put_u8(b',');
                }
                out.put_slice(&o.json);
            }
            out.put_slice(b"]}");
            Ok(json_bytes(StatusCode::OK, Bytes::from(out)))
        }
    }
}

fn object_list_response(ctx: &Ctx, list: &Value) -> Result<Response> {
    object_response(ctx, StatusCode::OK, list)
}
