//! The file: `Range`, HEAD, `If-Range`, the download, and the delete that removes it.

use super::api_common::Api;
use super::{Recorded, fetch, header, hex_sha256};

pub async fn ranges_and_download(api: &Api, rec: &Recorded) -> Vec<u8> {
    let entry = api
        .get(&format!("/api/v1/library/{}", rec.id))
        .await
        .expect(200);
    let sha = entry.body["sha256"].as_str().expect("sha").to_owned();
    let media = format!("/api/v1/library/{}/media", rec.id);

    let whole = fetch(api, "GET", &media, &[]).await;
    assert_eq!(whole.status(), 200);
    assert_eq!(header(&whole, "accept-ranges"), "bytes");
    assert_eq!(header(&whole, "content-type"), "video/webm");
    assert_eq!(header(&whole, "etag"), format!("\"{sha}\""));
    let file = whole.bytes().await.expect("body").to_vec();
    let len = file.len();
    assert_eq!(Some(len as i64), entry.body["bytes"].as_i64());
    assert_eq!(hex_sha256(&file), sha);
    assert_eq!(&file[..4], [0x1A, 0x45, 0xDF, 0xA3], "an EBML (WebM) file");

    let part = fetch(api, "GET", &media, &[("range", "bytes=1000-1999")]).await;
    assert_eq!(part.status(), 206);
    assert_eq!(
        header(&part, "content-range"),
        format!("bytes 1000-1999/{len}")
    );
    assert_eq!(header(&part, "content-length"), "1000");
    assert_eq!(
        part.bytes().await.expect("body").as_ref(),
        &file[1000..2000]
    );

    let cases = [
        ("bytes=-500".to_owned(), len - 500, len - 1),
        (format!("bytes={}-", len - 100), len - 100, len - 1),
        (format!("bytes=10-{}", len + 5000), 10, len - 1),
        ("bytes=0-0".to_owned(), 0, 0),
        (format!("bytes=-{}", len + 10), 0, len - 1),
    ];
    for (range, start, end) in cases {
        let r = fetch(api, "GET", &media, &[("range", range.as_str())]).await;
        assert_eq!(r.status(), 206, "{range}");
        assert_eq!(
            header(&r, "content-range"),
            format!("bytes {start}-{end}/{len}"),
            "{range}"
        );
        assert_eq!(
            r.bytes().await.expect("body").as_ref(),
            &file[start..=end],
            "{range}"
        );
    }
    for range in [
        format!("bytes={len}-"),
        format!("bytes={}-{}", len + 1, len + 9),
        "bytes=-0".into(),
        "bytes=9-2".into(),
        "bytes=x".into(),
    ] {
        let r = fetch(api, "GET", &media, &[("range", range.as_str())]).await;
        assert_eq!(r.status(), 416, "{range}");
        assert_eq!(
            header(&r, "content-range"),
            format!("bytes */{len}"),
            "{range}"
        );
        assert_eq!(header(&r, "content-type"), "application/problem+json");
    }
    // Another unit is ignored; so is a range against a changed file (If-Range).
    let r = fetch(api, "GET", &media, &[("range", "items=0-5")]).await;
    assert_eq!(r.status(), 200);
    let stale = [("range", "bytes=0-9"), ("if-range", "\"0000\"")];
    let r = fetch(api, "GET", &media, &stale).await;
    assert_eq!(
        (r.status().as_u16(), r.bytes().await.expect("body").len()),
        (200, len)
    );
    let tag = format!("\"{sha}\"");
    let fresh = [("range", "bytes=0-9"), ("if-range", tag.as_str())];
    assert_eq!(fetch(api, "GET", &media, &fresh).await.status(), 206);

    // HEAD: the headers without the bytes.
    let head = fetch(api, "HEAD", &media, &[]).await;
    assert_eq!(head.status(), 200);
    assert_eq!(header(&head, "content-length"), len.to_string());
    assert_eq!(header(&head, "accept-ranges"), "bytes");
    assert!(head.bytes().await.expect("body").is_empty());
    let head = fetch(api, "HEAD", &media, &[("range", "bytes=1000-1999")]).await;
    assert_eq!(head.status(), 206);
    assert_eq!(header(&head, "content-length"), "1000");

    let dl = fetch(
        api,
        "GET",
        &format!("/api/v1/library/{}/download", rec.id),
        &[],
    )
    .await;
    assert_eq!(dl.status(), 200);
    let disposition = header(&dl, "content-disposition").to_owned();
    assert!(
        disposition.starts_with("attachment; filename="),
        "{disposition}"
    );
    assert!(disposition.contains("filename*=UTF-8''"), "{disposition}");
    let body = dl.bytes().await.expect("body");
    assert_eq!(
        hex_sha256(&body),
        sha,
        "the download is the file the catalog describes"
    );
    file
}

pub async fn delete_removes_everything(api: &Api, rec: &Recorded, token: &str) {
    let data = &api.server.state.config.storage.data_dir;
    let file = data.join("library").join(&rec.id).join("lesson.webm");
    assert!(file.exists(), "{} in the library store", file.display());
    let entry = format!("/api/v1/library/{}", rec.id);
    api.send("DELETE", &entry, None, None).await.expect(401);
    api.send("DELETE", &entry, None, Some(token))
        .await
        .expect(401);
    api.delete(&entry).await.expect(204);
    assert!(!file.exists(), "the file is deleted");
    assert!(
        !data.join("library").join(&rec.id).exists(),
        "and its directory"
    );
    api.get(&entry).await.expect(404);
    api.get(&format!("{entry}/media")).await.expect(404);
    api.get(&format!("{entry}/notes")).await.expect(404);
    api.delete(&entry).await.expect(404);
    let audit = api.get("/api/v1/audit?action=library.delete").await;
    if audit.status == 200 {
        let s = audit.body.to_string();
        assert!(s.contains(&rec.id), "{s}");
    }
}
