//! AWS SDK errors as one line a reader can act on: the Display of each error in the source chain,
//! never Debug. Two SDK Displays need help: `ErrorMetadata` prints itself as a Debug-style struct
//! (`Error { code: "X", message: "Y", aws_request_id: "Z" }`), and an error response the SDK cannot
//! parse (moto's STS errors, a proxy's HTML page) keeps its code only in the raw response.
use std::error::Error as StdError;

use aws_sdk_eks::error::{ErrorMetadata, ProvideErrorMetadata};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;

/// `message: cause: cause's cause`, each level by its Display, metadata as `CODE: MESSAGE
/// (request id R)`, and an unparsed error response as `HTTP 403: <the body's first 300 chars>`.
pub fn describe(err: &(dyn StdError + 'static)) -> String {
    let mut out = String::new();
    let mut raw = None;
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        let text = match e.downcast_ref::<ErrorMetadata>() {
            Some(meta) => metadata(meta),
            None => e.to_string(),
        };
        push(&mut out, &text);
        raw = raw.or_else(|| unparsed_response(e));
        cur = e.source();
    }
    if let Some(raw) = raw {
        push(&mut out, &raw);
    }
    out
}

fn push(out: &mut String, text: &str) {
    if text.is_empty() || out.ends_with(text) {
        return;
    }
    if !out.is_empty() {
        out.push_str(": ");
    }
    out.push_str(text);
}

fn metadata(meta: &ErrorMetadata) -> String {
    let mut text = match (meta.code(), meta.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.to_string(),
        (None, Some(m)) => m.to_string(),
        (None, None) => String::new(),
    };
    if let Some(id) = meta.extra("aws_request_id") {
        let sep = if text.is_empty() { "" } else { " " };
        text.push_str(&format!("{sep}(request id {id})"));
    }
    text
}

/// The status and the start of the body of a service error whose code the SDK could not parse.
/// Error bodies hold codes and messages, never credentials (those travel in successful answers).
fn unparsed_response(e: &(dyn StdError + 'static)) -> Option<String> {
    macro_rules! try_types {
        ($($t:ty),+ $(,)?) => {$(
            if let Some(SdkError::ServiceError(se)) = e.downcast_ref::<SdkError<$t, HttpResponse>>() {
                if se.err().code().is_some() {
                    return None;
                }
                let raw = se.raw();
                let body = raw.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
                let body: String = crate::error::one_line(&body).chars().take(300).collect();
                return Some(format!("HTTP {}: {body}", raw.status().as_u16()));
            }
        )+};
    }
    try_types!(
        aws_sdk_sts::operation::assume_role::AssumeRoleError,
        aws_sdk_sts::operation::assume_role_with_web_identity::AssumeRoleWithWebIdentityError,
        aws_sdk_sso::operation::get_role_credentials::GetRoleCredentialsError,
        aws_sdk_eks::operation::list_clusters::ListClustersError,
        aws_sdk_eks::operation::describe_cluster::DescribeClusterError,
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sts::operation::assume_role::AssumeRoleError;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_types::body::SdkBody;

    fn service_error(
        status: u16,
        body: &str,
        meta: ErrorMetadata,
    ) -> SdkError<AssumeRoleError, HttpResponse> {
        let raw = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body.to_string()));
        SdkError::service_error(AssumeRoleError::generic(meta), raw)
    }

    #[test]
    fn causes_read_as_text_never_as_debug() {
        let unparsed = service_error(
            403,
            "<ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code></Error></Errors>\n</ErrorResponse>",
            ErrorMetadata::builder()
                .custom("aws_request_id", "R1")
                .build(),
        );
        let parsed = service_error(
            403,
            "<ignored/>",
            ErrorMetadata::builder()
                .code("InvalidClientTokenId")
                .message("The security token included in the request is invalid.")
                .custom("aws_request_id", "R2")
                .build(),
        );
        let dispatch: SdkError<AssumeRoleError, HttpResponse> = SdkError::dispatch_failure(
            ConnectorError::io(std::io::Error::other("connection refused").into()),
        );
        let cases: [(&(dyn StdError + 'static), &str); 3] = [
            (
                &unparsed,
                "service error: unhandled error: (request id R1): HTTP 403: <ErrorResponse><Errors><Error><Code>InvalidClientTokenId</Code></Error></Errors> </ErrorResponse>",
            ),
            (
                &parsed,
                "service error: unhandled error (InvalidClientTokenId): InvalidClientTokenId: The security token included in the request is invalid. (request id R2)",
            ),
            (&dispatch, "dispatch failure: io error: connection refused"),
        ];
        for (err, want) in cases {
            let got = describe(err);
            assert_eq!(got, want);
            assert!(
                !got.contains("Error {") && !got.contains("ServiceError"),
                "{got}"
            );
        }
    }
}
