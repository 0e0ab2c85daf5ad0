//! GetObject (with Range), HeadObject, PutObject, CopyObject, DeleteObject, DeleteObjects.

use s3s::dto::{
    ChecksumMode, CopyObjectInput, CopyObjectOutput, CopyObjectResult, CopySource,
    DeleteObjectInput, DeleteObjectOutput, DeleteObjectsInput, DeleteObjectsOutput, DeletedObject,
    ETag, GetObjectInput, GetObjectOutput, HeadObjectInput, HeadObjectOutput, Metadata,
    MetadataDirective, PutObjectInput, PutObjectOutput, StreamingBlob, Timestamp,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};
use statehouse_core::objects::{ObjectBody, ObjectMeta, ObjectRecord};
use statehouse_core::service::objects::{ObjectBytes, PutRequest};

use super::Endpoint;
use super::body::{ChecksumFields, Claims, chunk_stream, read_verified};
use super::errors::s3_error;

/// The most keys one DeleteObjects may name, as S3.
const MAX_DELETE_KEYS: usize = 1000;

pub(super) fn timestamp(at: statehouse_core::clock::Timestamp) -> Timestamp {
    let nanos = i128::from(at.millis()) * 1_000_000;
    let time = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    Timestamp::from(time)
}

pub(super) fn etag(value: &str) -> ETag {
    ETag::Strong(value.to_owned())
}

/// `x-amz-meta-*` as given, and the headers kept with an object.
fn request_meta(
    metadata: Option<Metadata>,
    content_encoding: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
) -> ObjectMeta {
    let mut user: Vec<(String, String)> = metadata
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v))
        .collect();
    user.sort();
    ObjectMeta {
        user,
        content_encoding,
        cache_control,
        content_disposition,
        checksums: Vec::new(),
    }
}

fn user_metadata(meta: &ObjectMeta) -> Option<Metadata> {
    (!meta.user.is_empty()).then(|| meta.user.iter().cloned().collect())
}

/// The checksums kept for a blob, answered when the client asks for them (`asked`) on a
/// whole-object read. (A stack file follows its state's versions, which keep no S3
/// checksums.)
fn answered_checksums(record: &ObjectRecord, asked: bool) -> ChecksumFields {
    match asked && matches!(record.body, ObjectBody::Blob { .. }) {
        true => ChecksumFields::of(&record.meta.checksums),
        false => ChecksumFields::default(),
    }
}

impl Endpoint {
    pub(super) async fn get_object_op(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let who = self.principal(&req).await?;
        let input = req.input;
        let read = self
            .services
            .object_get(&who, &input.bucket, &input.key)
            .await
            .map_err(s3_error)?;
        let record = read.record;
        let size = u64::try_from(record.size).unwrap_or(0);
        let range = match &input.range {
            Some(range) => Some(range.check(size).map_err(|_| {
                s3_error!(
                    InvalidRange,
                    "the requested range is not satisfiable for an object of {size} bytes"
                )
            })?),
            None => None,
        };
        let wanted = range.clone().unwrap_or(0..size);
        let body = match read.bytes {
            ObjectBytes::Whole(bytes) => {
                let from = usize::try_from(wanted.start).unwrap_or(0);
                let to = usize::try_from(wanted.end)
                    .unwrap_or(bytes.len())
                    .min(bytes.len());
                StreamingBlob::from(s3s::Body::from(bytes.slice(from.min(to)..to)))
            }
            ObjectBytes::Chunks(reader) => chunk_stream(reader, wanted.clone()),
        };
        let whole = range.is_none();
        let asked =
            whole && input.checksum_mode == Some(ChecksumMode::from_static(ChecksumMode::ENABLED));
        let sums = answered_checksums(&record, asked);
        let output = GetObjectOutput {
            body: Some(body),
            content_length: Some(i64::try_from(wanted.end - wanted.start).unwrap_or(0)),
            content_range: range
                .as_ref()
                .map(|r| format!("bytes {}-{}/{size}", r.start, r.end.saturating_sub(1))),
            accept_ranges: Some("bytes".into()),
            content_type: record.content_type.clone(),
            content_encoding: record.meta.content_encoding.clone(),
            cache_control: record.meta.cache_control.clone(),
            content_disposition: record.meta.content_disposition.clone(),
            e_tag: Some(etag(&record.etag)),
            last_modified: Some(timestamp(record.last_modified)),
            metadata: user_metadata(&record.meta),
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            ..GetObjectOutput::default()
        };
        let mut response = S3Response::new(output);
        if range.is_some() {
            response.status = Some(http::StatusCode::PARTIAL_CONTENT);
        }
        Ok(response)
    }

    pub(super) async fn head_object_op(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let who = self.principal(&req).await?;
        let input = req.input;
        let record = self
            .services
            .object_head(&who, &input.bucket, &input.key)
            .await
            .map_err(s3_error)?;
        let asked = input.checksum_mode == Some(ChecksumMode::from_static(ChecksumMode::ENABLED));
        let sums = answered_checksums(&record, asked);
        Ok(S3Response::new(HeadObjectOutput {
            content_length: Some(record.size),
            accept_ranges: Some("bytes".into()),
            content_type: record.content_type.clone(),
            content_encoding: record.meta.content_encoding.clone(),
            cache_control: record.meta.cache_control.clone(),
            content_disposition: record.meta.content_disposition.clone(),
            e_tag: Some(etag(&record.etag)),
            last_modified: Some(timestamp(record.last_modified)),
            metadata: user_metadata(&record.meta),
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            ..HeadObjectOutput::default()
        }))
    }

    pub(super) async fn put_object_op(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let who = self.principal(&req).await?;
        let claims = Claims::from_headers(&req.headers);
        let input = req.input;
        let (body, verified) = read_verified(
            input.body,
            self.max_object_bytes,
            claims,
            req.trailing_headers,
        )
        .await?;
        let mut meta = request_meta(
            input.metadata,
            input.content_encoding,
            input.cache_control,
            input.content_disposition,
        );
        meta.checksums = verified.checksums.clone();
        let request = PutRequest {
            key: input.key,
            content_type: input.content_type,
            meta,
        };
        let stored = self
            .services
            .object_put(&who, &input.bucket, request, body)
            .await
            .map_err(s3_error)?;
        let sums = ChecksumFields::of(&verified.checksums);
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(etag(&stored.etag)),
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            ..PutObjectOutput::default()
        }))
    }

    pub(super) async fn copy_object_op(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let who = self.principal(&req).await?;
        let input = req.input;
        let CopySource::Bucket {
            bucket: source_bucket,
            key: source_key,
            version_id,
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "copies from access points or outposts are not supported: name the source as bucket/key"
            ));
        };
        if version_id.is_some() {
            return Err(s3_error!(
                InvalidArgument,
                "object versions are not kept by S3 version id here; a stack's versions are in statehouse's API"
            ));
        }
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
        let replacement = replace.then(|| {
            (
                input.content_type.clone(),
                request_meta(
                    input.metadata.clone(),
                    input.content_encoding.clone(),
                    input.cache_control.clone(),
                    input.content_disposition.clone(),
                ),
            )
        });
        let copied = self
            .services
            .object_copy(
                &who,
                &input.bucket,
                source_bucket,
                source_key,
                &input.key,
                replacement,
            )
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(etag(&copied.etag)),
                last_modified: Some(timestamp(copied.last_modified)),
                ..CopyObjectResult::default()
            }),
            ..CopyObjectOutput::default()
        }))
    }

    pub(super) async fn delete_object_op(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let who = self.principal(&req).await?;
        self.services
            .object_delete(&who, &req.input.bucket, &req.input.key)
            .await
            .map_err(s3_error)?;
        let mut response = S3Response::new(DeleteObjectOutput::default());
        response.status = Some(http::StatusCode::NO_CONTENT);
        Ok(response)
    }

    /// Each key is deleted on its own: one that fails is reported and the others go.
    pub(super) async fn delete_objects_op(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let who = self.principal(&req).await?;
        let input = req.input;
        if input.delete.objects.len() > MAX_DELETE_KEYS {
            return Err(s3_error!(
                MalformedXML,
                "one request deletes at most {MAX_DELETE_KEYS} keys"
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for object in input.delete.objects {
            match self
                .services
                .object_delete(&who, &input.bucket, &object.key)
                .await
            {
                Ok(()) if quiet => {}
                Ok(()) => deleted.push(DeletedObject {
                    key: Some(object.key),
                    ..DeletedObject::default()
                }),
                Err(e) => {
                    let e = s3_error(e);
                    errors.push(s3s::dto::Error {
                        code: Some(e.code().as_str().to_owned()),
                        key: Some(object.key),
                        message: e.message().map(str::to_owned),
                        version_id: None,
                    });
                }
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..DeleteObjectsOutput::default()
        }))
    }
}
