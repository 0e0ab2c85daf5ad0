//! CreateMultipartUpload, UploadPart, CompleteMultipartUpload, AbortMultipartUpload,
//! ListParts.

use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput,
    ListPartsInput, ListPartsOutput, Part as PartDto, UploadPartInput, UploadPartOutput,
};
use s3s::{S3Request, S3Response, S3Result, s3_error};
use statehouse_core::objects::ObjectMeta;
use statehouse_core::service::multipart::{ChosenPart, PartWriter};
use statehouse_core::service::objects::PutRequest;

use super::Endpoint;
use super::body::{BodySink, ChecksumFields, Claims, read_checked};
use super::errors::s3_error;
use super::objects::{etag, timestamp};

impl Endpoint {
    pub(super) async fn create_multipart_upload_op(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let who = self.principal(&req).await?;
        let input = req.input;
        let mut user: Vec<(String, String)> = input
            .metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v))
            .collect();
        user.sort();
        let request = PutRequest {
            key: input.key.clone(),
            content_type: input.content_type,
            meta: ObjectMeta {
                user,
                content_encoding: input.content_encoding,
                cache_control: input.cache_control,
                content_disposition: input.content_disposition,
                checksums: Vec::new(),
            },
        };
        let upload_id = self
            .services
            .upload_create(&who, &input.bucket, request)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload_id),
            ..CreateMultipartUploadOutput::default()
        }))
    }

    pub(super) async fn upload_part_op(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let who = self.principal(&req).await?;
        let claims = Claims::from_headers(&req.headers);
        let input = req.input;
        let mut part = self
            .services
            .upload_part_start(
                &who,
                &input.bucket,
                &input.key,
                &input.upload_id,
                i64::from(input.part_number),
            )
            .await
            .map_err(s3_error)?;
        let checked = read_checked(
            input.body,
            self.max_object_bytes,
            claims,
            req.trailing_headers,
            &mut part,
        )
        .await?;
        let sealed = part.finish().await.map_err(s3_error)?;
        checked.check_md5(sealed.md5())?;
        let sums = ChecksumFields::of(&checked.meta.checksums);
        let output = UploadPartOutput {
            checksum_crc32: sums.crc32,
            checksum_crc32c: sums.crc32c,
            checksum_crc64nvme: sums.crc64nvme,
            checksum_sha1: sums.sha1,
            checksum_sha256: sums.sha256,
            ..UploadPartOutput::default()
        };
        let tag = sealed.store(checked.meta).await.map_err(s3_error)?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(etag(&tag)),
            ..output
        }))
    }

    pub(super) async fn complete_multipart_upload_op(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let who = self.principal(&req).await?;
        let input = req.input;
        let parts = input
            .multipart_upload
            .and_then(|m| m.parts)
            .unwrap_or_default();
        let mut chosen = Vec::with_capacity(parts.len());
        for part in parts {
            let (Some(part_no), Some(tag)) = (part.part_number, part.e_tag) else {
                return Err(s3_error!(
                    MalformedXML,
                    "every completed part names its PartNumber and ETag"
                ));
            };
            chosen.push(ChosenPart {
                part_no: i64::from(part_no),
                etag: tag.value().to_owned(),
            });
        }
        let done = self
            .services
            .upload_complete(&who, &input.bucket, &input.key, &input.upload_id, &chosen)
            .await
            .map_err(s3_error)?;
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            e_tag: Some(etag(&done.etag)),
            ..CompleteMultipartUploadOutput::default()
        }))
    }

    pub(super) async fn abort_multipart_upload_op(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let who = self.principal(&req).await?;
        let input = req.input;
        self.services
            .upload_abort(&who, &input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(s3_error)?;
        let mut response = S3Response::new(AbortMultipartUploadOutput::default());
        response.status = Some(http::StatusCode::NO_CONTENT);
        Ok(response)
    }

    pub(super) async fn list_parts_op(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let who = self.principal(&req).await?;
        let input = req.input;
        let (_, parts) = self
            .services
            .upload_parts(&who, &input.bucket, &input.key, &input.upload_id)
            .await
            .map_err(s3_error)?;
        let marker = i64::from(input.part_number_marker.unwrap_or(0));
        let max = usize::try_from(input.max_parts.unwrap_or(1000).clamp(1, 1000)).unwrap_or(1000);
        let after: Vec<_> = parts.into_iter().filter(|p| p.part_no > marker).collect();
        let truncated = after.len() > max;
        let page: Vec<_> = after.into_iter().take(max).collect();
        let next = page
            .last()
            .filter(|_| truncated)
            .and_then(|p| i32::try_from(p.part_no).ok());
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            is_truncated: Some(truncated),
            next_part_number_marker: next,
            part_number_marker: input.part_number_marker,
            max_parts: input.max_parts,
            parts: Some(
                page.into_iter()
                    .map(|p| PartDto {
                        part_number: i32::try_from(p.part_no).ok(),
                        e_tag: Some(etag(&p.etag)),
                        size: Some(p.size),
                        last_modified: Some(timestamp(p.at)),
                        ..PartDto::default()
                    })
                    .collect(),
            ),
            ..ListPartsOutput::default()
        }))
    }
}

/// A part's bytes are sealed as they arrive.
impl BodySink for PartWriter {
    async fn take(&mut self, piece: bytes::Bytes) -> S3Result<()> {
        self.write(&piece).await.map_err(s3_error)
    }
}
