// TEST-ONLY TLS identity for the tls-echo demo (the same files as Tests/NetTests/Fixtures, made by
// make-certs.sh there). These keys are public: never use them for anything but demos and tests.

enum TestIdentity {
    static let caPEM = """
        -----BEGIN CERTIFICATE-----
        MIIBkTCCATegAwIBAgIUWUZrBgzH7dgFDo1n6qYvsEjGJbswCgYIKoZIzj0EAwIw
        HTEbMBkGA1UEAwwSYXN5bmN0cmFjZSB0ZXN0IENBMCAXDTI2MTEyMjAxMTA0N1oY
        DzIxMjYxMDI5MDExMDQ3WjAdMRswGQYDVQQDDBJhc3luY3RyYWNlIHRlc3QgQ0Ew
        WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQ2OcSE/ctGp+RdsSx2RNYkcprh7cRC
        5/OGBhIvu2Tfod1Z/uolpAYir7bbW0Jpty8rttttrOHxCi/jqtWsqaOMo1MwUTAd
        BgNVHQ4EFgQUWbZmp5hzMRSBf3//Nwh40Bcss1kwHwYDVR0jBBgwFoAUWbZmp5hz
        MRSBf3//Nwh40Bcss1kwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNIADBF
        AiEAkqdJ7Ey8QoTOIKPE5XCrbQCUIh3F1ebTbkucHsfMGVgCIBkJpLJlqADq3a9J
        jWkO2MrQsS8l9W0JsWVGz7lUrVQO
        -----END CERTIFICATE-----
        """
    static let serverCertificatePEM = """
        -----BEGIN CERTIFICATE-----
        MIIBnjCCAUSgAwIBAgIUBD7IMGZlP9MVdt6oO46M0AiKecUwCgYIKoZIzj0EAwIw
        HTEbMBkGA1UEAwwSYXN5bmN0cmFjZSB0ZXN0IENBMCAXDTI2MTEyMjAxMTA0N1oY
        DzIxMjYxMDI5MDExMDQ3WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjO
        PQIBBggqhkjOPQMBBwNCAAS2XG5RflD9pw0+BJD/2rWH0dGnXZdztlhoKt8AvREB
        Q7bFB4Xq1K9aVPmXoF5ZvNLQTUnW8ZVzFxyXhmpWY2/So2kwZzAaBgNVHREEEzAR
        gglsb2NhbGhvc3SHBH8AAAEwCQYDVR0TBAIwADAdBgNVHQ4EFgQUxXJKoGOsL69/
        LwiJ9/JlsM0U0nowHwYDVR0jBBgwFoAUWbZmp5hzMRSBf3//Nwh40Bcss1kwCgYI
        KoZIzj0EAwIDSAAwRQIhAOc+6BO8gjv5DDvNMtLLZhJUd+cMcw6ebBzMmMXFxbIv
        AiAQMyhnpxkD2oo+MvxAjVOf8rPlnMGH54ZkcN/b6JPJpA==
        -----END CERTIFICATE-----
        """
    static let serverKeyPEM = """
        -----BEGIN PRIVATE KEY-----
        MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPpynBkUrLIThvMCI
        rcEtNQzHzWvVp8pv4XzqAsN3y3ihRANCAAS2XG5RflD9pw0+BJD/2rWH0dGnXZdz
        tlhoKt8AvREBQ7bFB4Xq1K9aVPmXoF5ZvNLQTUnW8ZVzFxyXhmpWY2/S
        -----END PRIVATE KEY-----
        """
}
