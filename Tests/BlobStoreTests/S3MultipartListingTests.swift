import BlobStoreS3
import Testing

/// ListMultipartUploads answers as S3 (the AWS reference example) and Ceph RGW write them.
@Suite struct S3MultipartListingTests {
    static let page = """
        <?xml version="1.0" encoding="UTF-8"?>
        <ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
          <Bucket>bucket</Bucket>
          <KeyMarker></KeyMarker>
          <UploadIdMarker></UploadIdMarker>
          <NextKeyMarker>imaged/images/b&amp;c</NextKeyMarker>
          <NextUploadIdMarker>2~xyz</NextUploadIdMarker>
          <MaxUploads>2</MaxUploads>
          <IsTruncated>true</IsTruncated>
          <Upload>
            <Key>imaged/images/a</Key>
            <UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>
            <Initiator><ID>arn:aws:iam::111122223333:user/user1</ID><DisplayName>user1</DisplayName></Initiator>
            <Owner><ID>75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a</ID></Owner>
            <StorageClass>STANDARD</StorageClass>
            <Initiated>2010-11-10T20:48:33.000Z</Initiated>
          </Upload>
          <Upload>
            <Key>imaged/images/b&amp;c</Key>
            <UploadId>2~xyz</UploadId>
            <Initiated>2010-11-10T20:49:33Z</Initiated>
          </Upload>
          <Upload>
            <Key>imaged/staging/d</Key>
            <UploadId>2~undated</UploadId>
          </Upload>
        </ListMultipartUploadsResult>
        """

    @Test func uploadsWithTheirStartAndTheNextPage() {
        let listing = S3MultipartListing(xml: Self.page)
        #expect(listing.uploads.map(\.object) == ["imaged/images/a", "imaged/images/b&c", "imaged/staging/d"])
        #expect(listing.uploads.map(\.uploadId) == ["VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA", "2~xyz", "2~undated"])
        #expect(listing.uploads.map(\.initiated) == [1_289_422_113, 1_289_422_173, nil])
        #expect(listing.truncated)
        #expect(listing.nextKeyMarker == "imaged/images/b&c")
        #expect(listing.nextUploadIdMarker == "2~xyz")
    }

    @Test func ageBoundIsStrictAndAnUndatedUploadIsKept() {
        let uploads = S3MultipartListing(xml: Self.page).uploads
        #expect(uploads[0].isOlder(than: 60, now: 1_289_422_113 + 61))
        #expect(!uploads[0].isOlder(than: 60, now: 1_289_422_113 + 60))
        #expect(!uploads[2].isOlder(than: 0, now: Int64.max))
    }

    @Test func lastPageAndEmptyAnswer() {
        let last = S3MultipartListing(xml: "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><NextKeyMarker></NextKeyMarker></ListMultipartUploadsResult>")
        #expect(last.uploads.isEmpty && !last.truncated && last.nextKeyMarker == nil)
        #expect(S3MultipartListing(xml: "").uploads.isEmpty)
    }
}
