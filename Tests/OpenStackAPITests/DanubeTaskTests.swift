import Foundation
import ImageCore
import ImageData
import Testing
@testable import DanubeAPI

/// Danube's task answers over task rows, datacenters of an image, and the `cb_url` body (issue 18).
@Suite struct DanubeTaskTests {
    func row(_ type: String, _ status: ImageTask.Status, result: String? = nil, message: String = "") -> ImageTask {
        ImageTask(id: ImageID.generate(), type: type, status: status, owner: "p1", imageId: "img-1", userId: "u1", requestId: nil,
                  input: "{}", result: result, message: message, createdAt: 0, updatedAt: 0)
    }

    @Test func statusesOfImportsAndJobs() {
        let running = DanubeTasks.status(row(ImageImports.taskType, .processing))
        #expect(running.word == "PENDING" && running.status.code == 201 && running.result == .null)
        let imported = DanubeTasks.status(row(ImageImports.taskType, .success))
        #expect(imported.word == "SUCCESS" && imported.result["message"] == .string("Successfully imported image img-1"))
        let failed = DanubeTasks.status(row(ImageImports.taskType, .failure, message: "boom"))
        #expect(failed.word == "FAILURE" && failed.status.code == 400 && failed.result["detail"] == .string("Got bad return code (1). Error: boom"))
        let cancelled = DanubeTasks.status(row(ImageImports.taskType, .failure, result: ImageService.cancelledTaskResult, message: "Task was cancelled"))
        #expect(cancelled.word == "REVOKED" && cancelled.status.code == 410 && cancelled.result["detail"] == .string("Task was cancelled"))
        let stored = #"{"returncode":0,"message":"Successfully updated image web"}"#
        let put = DanubeTasks.status(row(DanubeTasks.jobType, .success, result: stored))
        #expect(put.word == "SUCCESS" && put.status.code == 200 && put.result["message"] == .string("Successfully updated image web"))
        // the envelope carries the real id given
        let (code, body) = DanubeTasks.envelope("1e1u1-x", row(DanubeTasks.jobType, .success, result: stored))
        #expect(code.code == 200 && body["task_id"] == .string("1e1u1-x") && body["status"] == .string("SUCCESS"))
        #expect(DanubeTasks.method(row(DanubeTasks.jobType, .success)) == "PUT" && DanubeTasks.method(row(ImageImports.taskType, .pending)) == "POST")
    }

    @Test func datacentersOfAnImage() {
        var image = Image(id: ImageID.generate(), name: "web", owner: "p1", createdAt: 0, updatedAt: 0)
        #expect(DanubeImage.dcs(image, default: "main") == ["main"])  // made elsewhere: the default DC
        image.extensions["danube"] = .object([("dc", .string("lab"))])
        #expect(DanubeImage.dcs(image, default: "main") == ["lab"])  // bound before `dcs` was kept
        image.extensions["danube"] = .object([("dc", .string("lab")), ("dcs", .array([.string("lab"), .string("main")]))])
        #expect(DanubeImage.dcs(image, default: "main") == ["lab", "main"])
        #expect(DanubeImage.render(image, extended: true, defaultDC: "main")["dcs"] == .array([.string("lab"), .string("main")]))
        image.extensions["danube"] = .object([(DanubeImage.importAccessKey, .int(4))])
        #expect(DanubeImage.access(image) == 4)  // an import asked for access 4: shown before it is settled
    }

    @Test func callbackBodyCarriesTheTokens() throws {
        let cb = DanubeCallback(url: "http://127.0.0.1/cb", method: "POST", key: "s3cret")
        let envelope: JSONValue = .object([("task_id", .string("1e1u1-x")), ("status", .string("SUCCESS")), ("result", .null)])
        let body = try JSONValue.parse(cb.body(envelope))
        let random = try #require(body["random_token"]?.stringValue)
        #expect(random.count == 32 && body["task_id"] == .string("1e1u1-x") && body["status"] == .string("SUCCESS"))
        #expect(body["security_token"] == .string(DanubeCallback.md5(random + "s3cret")))
        #expect(DanubeCallback.md5("") == "d41d8cd98f00b204e9800998ecf8427e")
        #expect(cb.json == .object([("url", .string("http://127.0.0.1/cb")), ("method", .string("POST"))]))
    }
}
