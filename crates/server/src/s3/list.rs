//! ListObjectsV2, ListObjects (v1), ListBuckets, HeadBucket, GetBucketLocation.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use s3s::dto::{
    Bucket, CommonPrefix, EncodingType, GetBucketLocationInput, GetBucketLocationOutput,
    HeadBucketInput, HeadBucketOutput, ListBucketsInput, ListBucketsOutput, ListObjectsInput,
    ListObjectsOutput, ListObjectsV2Input, ListObjectsV2Output, Object,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};
use statehouse_core::objects::{ListPage, ListQuery};
use statehouse_core::service::object_list::MAX_KEYS;

use super::Endpoint;
use super::errors::s3_error;
use super::objects::{etag, timestamp};

/// What `encoding-type=url` leaves as is in keys: unreserved characters and `/`.
const KEY_ENCODING: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

fn max_keys(asked: Option<i32>) -> S3Result<usize> {
    match asked {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(s3_error!(InvalidArgument, "max-keys must not be negative")),
        Some(n) => Ok(usize::try_from(n).unwrap_or(MAX_KEYS).min(MAX_KEYS)),
    }
}

/// Keys as the listing returns them: URL-encoded when the client asked (boto3 does for v1).
struct Encoder(bool);

impl Encoder {
    fn of(encoding: &Option<EncodingType>) -> Self {
        Encoder(
            encoding
                .as_ref()
                .is_some_and(|e| e.as_str() == EncodingType::URL),
        )
    }

    fn key(&self, key: String) -> String {
        match self.0 {
            true => utf8_percent_encode(&key, KEY_ENCODING).to_string(),
            false => key,
        }
    }
}

fn contents(page: &ListPage, encoder: &Encoder) -> (Vec<Object>, Vec<CommonPrefix>) {
    let objects = page
        .objects
        .iter()
        .map(|o| Object {
            key: Some(encoder.key(o.key.clone())),
            size: Some(o.size),
            e_tag: Some(etag(&o.etag)),
            last_modified: Some(timestamp(o.last_modified)),
            storage_class: Some(s3s::dto::ObjectStorageClass::from_static(
                s3s::dto::ObjectStorageClass::STANDARD,
            )),
            ..Object::default()
        })
        .collect();
    let prefixes = page
        .common_prefixes
        .iter()
        .map(|p| CommonPrefix {
            prefix: Some(encoder.key(p.clone())),
        })
        .collect();
    (objects, prefixes)
}

fn decode_token(token: &str) -> S3Result<String> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "the continuation token is not one this server gave"
            )
        })
}

impl Endpoint {
    pub(super) async fn list_objects_v2_op(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let who = self.principal(&req).await?;
        let input = req.input;
        let after = match (&input.continuation_token, &input.start_after) {
            (Some(token), _) => Some(decode_token(token)?),
            (None, Some(start)) => Some(start.clone()),
            (None, None) => None,
        };
        let query = ListQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            after,
            max_keys: max_keys(input.max_keys)?,
        };
        let page = if query.max_keys == 0 {
            ListPage::default()
        } else {
            self.services
                .object_list(&who, &input.bucket, &query)
                .await
                .map_err(s3_error)?
        };
        let encoder = Encoder::of(&input.encoding_type);
        let (objects, prefixes) = contents(&page, &encoder);
        let count = objects.len() + prefixes.len();
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(encoder.key(query.prefix)),
            delimiter: query.delimiter.map(|d| encoder.key(d)),
            max_keys: input.max_keys.or(Some(1000)),
            key_count: Some(i32::try_from(count).unwrap_or(i32::MAX)),
            is_truncated: Some(page.next_after.is_some()),
            next_continuation_token: page
                .next_after
                .map(|after| URL_SAFE_NO_PAD.encode(after.as_bytes())),
            continuation_token: input.continuation_token,
            start_after: input.start_after.map(|s| encoder.key(s)),
            encoding_type: input.encoding_type,
            contents: Some(objects),
            common_prefixes: Some(prefixes),
            ..ListObjectsV2Output::default()
        }))
    }

    pub(super) async fn list_objects_op(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let who = self.principal(&req).await?;
        let input = req.input;
        let query = ListQuery {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            after: input.marker.clone().filter(|m| !m.is_empty()),
            max_keys: max_keys(input.max_keys)?,
        };
        let page = if query.max_keys == 0 {
            ListPage::default()
        } else {
            self.services
                .object_list(&who, &input.bucket, &query)
                .await
                .map_err(s3_error)?
        };
        let encoder = Encoder::of(&input.encoding_type);
        let (objects, prefixes) = contents(&page, &encoder);
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encoder.key(query.prefix)),
            delimiter: query.delimiter.map(|d| encoder.key(d)),
            marker: input.marker.map(|m| encoder.key(m)),
            max_keys: input.max_keys.or(Some(1000)),
            is_truncated: Some(page.next_after.is_some()),
            next_marker: page.next_after.map(|m| encoder.key(m)),
            encoding_type: input.encoding_type,
            contents: Some(objects),
            common_prefixes: Some(prefixes),
            ..ListObjectsOutput::default()
        }))
    }

    pub(super) async fn list_buckets_op(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let who = self.principal(&req).await?;
        let buckets = self.services.buckets(&who).await.map_err(s3_error)?;
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(
                buckets
                    .into_iter()
                    .map(|ws| Bucket {
                        name: Some(ws.name),
                        creation_date: Some(timestamp(ws.created_at)),
                        ..Bucket::default()
                    })
                    .collect(),
            ),
            ..ListBucketsOutput::default()
        }))
    }

    pub(super) async fn head_bucket_op(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let who = self.principal(&req).await?;
        self.services
            .head_bucket(&who, &req.input.bucket)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    pub(super) async fn get_bucket_location_op(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let who = self.principal(&req).await?;
        self.services
            .head_bucket(&who, &req.input.bucket)
            .await
            .map_err(s3_error)?;
        // No constraint: the default region, which is what clients configured with any
        // region accept for a custom endpoint.
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }
}
