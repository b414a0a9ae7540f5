import EdgeLabCore
import Foundation
import Metrics
import Pipeline

/// The results file layout (documented in docs/results.md):
///
/// ```
/// /                 attributes: experiment, spec_json, toolkit_version, git_commit, git_dirty, git_diff, host,
///                   started_at, finished_at, seed, backend, runs_total, runs_written, complete, schema_version
/// /summary          table, one row per run: identity, sweep values, summary metrics
/// /NAME             further tables some files carry (e.g. /validation: predicted vs measured)
/// /runs/runNNNN     attributes: identity, sweep values (param.<label>), plan facts, fact.<name>
///   summary         group whose attributes are the summary metrics
///   requests        table: id, arrival_s, first_token_s, completion_s, prompt_tokens, output_tokens, ttft_s, tpot_s
///   tokens          table: request_id, token_index, time_s
///   plan            table: stage, device, first_layer, end_layer, offloaded_layers, group
///   stages          table: stage, device, first_layer, end_layer, offloaded_count, compute_s, micro_batches
///   links           table: from, to, bytes, messages, busy_s, mechanism
///   devices         table: device, peak_memory_bytes, compute_s, transfer_s, load_stall_s, idle_s
///   events          table (runs that recorded them): kind, device, peer, stage, batch, layer, start_s, end_s
/// ```
enum Schema {
  static func encode(_ file: ResultsFile) -> Group {
    let i = file.info
    var root = Group(attributes: [
      "experiment": .string(i.experiment), "spec_json": .string(i.specJSON),
      "toolkit_version": .string(i.toolkitVersion),
      "git_commit": .string(i.gitCommit), "git_dirty": .int(i.gitDirty ? 1 : 0), "git_diff": .string(i.gitDiff),
      "host": .string(i.host), "started_at": .string(i.startedAt), "finished_at": .string(i.finishedAt),
      "seed": .int(Int64(bitPattern: i.seed)), "backend": .string(i.backend), "runs_total": .int(Int64(i.runsTotal)),
      "runs_written": .int(Int64(file.runs.count)), "complete": .int(i.complete ? 1 : 0),
      "schema_version": .int(ResultsStore.schemaVersion),
    ])
    for (k, v) in i.extra { root.attributes[k] = .string(v) }
    root.tables.append(summaryTable(file.runs))
    root.tables += file.tables.filter { $0.name != "summary" }
    var runs = Group()
    for r in file.runs { runs.groups[r.groupName] = encode(r) }
    root.groups["runs"] = runs
    return root
  }

  static func parameterColumns(_ runs: [RunRecord]) -> [Column] {
    guard let first = runs.first else { return [] }
    var cols: [Column] = []
    for (k, p) in first.parameters.enumerated() {
      cols.append(
        .string("param." + p.label, runs.map { k < $0.parameters.count ? $0.parameters[k].value.description : "" }))
      if let n = p.numeric {
        cols.append(
          .double(
            p.label + n.suffix, runs.map { k < $0.parameters.count ? ($0.parameters[k].numeric?.value ?? .nan) : .nan })
        )
      }
      if p.kind != nil {
        cols.append(
          .string(p.label + "_kind", runs.map { k < $0.parameters.count ? ($0.parameters[k].kind ?? "") : "" }))
      }
    }
    return cols
  }

  static func summaryTable(_ runs: [RunRecord]) -> Table {
    var cols: [Column] = [
      .string("run", runs.map(\.groupName)), .int("index", runs.map { Int64($0.index) }),
      .int("point", runs.map { Int64($0.point) }), .string("algorithm", runs.map(\.algorithm)),
      .string("label", runs.map(\.label)), .int("repetition", runs.map { Int64($0.repetition) }),
      .string("status", runs.map(\.outcome.status.rawValue)),
    ]
    cols += parameterColumns(runs)
    cols.append(.double("plan_value_s", runs.map { $0.plan?.valueSeconds ?? .nan }))
    cols.append(.int("plan_stages", runs.map { Int64($0.plan?.stages.count ?? 0) }))
    let summaries = runs.map(\.summary)
    if let names = summaries.first?.scalars.map(\.0) {
      for (k, name) in names.enumerated() { cols.append(.double(name, summaries.map { $0.scalars[k].1 })) }
    } else {
      for (name, _) in RunSummary(RunOutcome(status: .complete)).scalars { cols.append(.double(name, [])) }
    }
    return Table(name: "summary", columns: cols)
  }

  static func encode(_ r: RunRecord) -> Group {
    var a: [String: AttributeValue] = [
      "index": .int(Int64(r.index)), "point": .int(Int64(r.point)), "algorithm": .string(r.algorithm),
      "label": .string(r.label), "repetition": .int(Int64(r.repetition)), "seed": .int(Int64(bitPattern: r.seed)),
      "key": .string(r.key), "status": .string(r.outcome.status.rawValue), "message": .string(r.outcome.message ?? ""),
      "wall_s": .double(r.outcome.wallSeconds),
      "params_json": .string(
        (try? JSONCoding.compactString(r.parameters.map { [$0.label, $0.path, $0.value.description] })) ?? "[]"),
    ]
    for p in r.parameters {
      a["param." + p.label] = .string(p.value.description)
      if let n = p.numeric { a[p.label + n.suffix] = .double(n.value) }
      if let kind = p.kind { a[p.label + "_kind"] = .string(kind) }
    }
    if let plan = r.plan {
      a["plan_value_s"] = .double(plan.valueSeconds)
      a["plan_value_model"] = .string(plan.valueModel.rawValue)
      a["plan_objective"] = .string(plan.objective.rawValue)
      a["plan_exact"] = .int(plan.exact ? 1 : 0)
      a["plan_explanation"] = .string(plan.explanation)
      a["plan_notes"] = .string(plan.notes.joined(separator: "\n"))
      a["plan_micro_batches"] = .int(Int64(plan.microBatches))
      a["plan_json"] = .string((try? JSONCoding.compactString(plan)) ?? "")
    }
    for (k, v) in r.outcome.facts {
      switch v {
      case .number(let n): a["fact." + k] = .double(n)
      case .string(let s): a["fact." + k] = .string(s)
      case .bool(let b): a["fact." + k] = .int(b ? 1 : 0)
      default: a["fact." + k] = .string(v.description)
      }
    }
    var g = Group(attributes: a)
    let summary = r.summary
    g.groups["summary"] = Group(
      attributes: Dictionary(uniqueKeysWithValues: summary.scalars.map { ($0.0, AttributeValue.double($0.1)) }))
    let reqs = r.outcome.requests
    g.tables.append(
      Table(
        name: "requests",
        columns: [
          .int("id", reqs.map { Int64($0.id) }), .double("arrival_s", reqs.map(\.arrival)),
          .double("first_token_s", reqs.map { $0.firstToken ?? .nan }),
          .double("completion_s", reqs.map { $0.completion ?? .nan }),
          .int("prompt_tokens", reqs.map { Int64($0.promptTokens) }),
          .int("output_tokens", reqs.map { Int64($0.outputTokens) }),
          .double("ttft_s", reqs.map { $0.ttft ?? .nan }), .double("tpot_s", reqs.map { $0.tpot ?? .nan }),
        ]))
    var rid: [Int64] = []
    var tix: [Int64] = []
    var tt: [Double] = []
    for q in reqs {
      for (k, t) in q.tokenTimes.enumerated() {
        rid.append(Int64(q.id))
        tix.append(Int64(k))
        tt.append(t)
      }
    }
    g.tables.append(
      Table(name: "tokens", columns: [.int("request_id", rid), .int("token_index", tix), .double("time_s", tt)]))
    let stages = r.plan?.stages ?? []
    g.tables.append(
      Table(
        name: "plan",
        columns: [
          .int("stage", stages.indices.map { Int64($0) }), .string("device", stages.map(\.device)),
          .int("first_layer", stages.map { Int64($0.firstLayer) }),
          .int("end_layer", stages.map { Int64($0.endLayer) }),
          .string("offloaded_layers", stages.map { $0.offloadedLayers.map(String.init).joined(separator: ",") }),
          .string(
            "group",
            stages.map { s in
              s.group.map {
                "\($0.members.joined(separator: ",")) \($0.collective.rawValue); kv_heads \($0.kvHeads.map(String.init).joined(separator: ",")); ffn_columns \($0.ffnColumns.map(String.init).joined(separator: ","))"
              } ?? ""
            }),
        ]))
    let st = r.outcome.stages
    g.tables.append(
      Table(
        name: "stages",
        columns: [
          .int("stage", st.map { Int64($0.index) }), .string("device", st.map(\.device)),
          .int("first_layer", st.map { Int64($0.firstLayer) }), .int("end_layer", st.map { Int64($0.endLayer) }),
          .int("offloaded_count", st.map { Int64($0.offloadedLayers) }), .double("compute_s", st.map(\.computeSeconds)),
          .int("micro_batches", st.map { Int64($0.microBatches) }),
        ]))
    let ls = r.outcome.links
    g.tables.append(
      Table(
        name: "links",
        columns: [
          .string("from", ls.map(\.from)), .string("to", ls.map(\.to)), .double("bytes", ls.map(\.bytes)),
          .int("messages", ls.map { Int64($0.messages) }), .double("busy_s", ls.map(\.busySeconds)),
          .string("mechanism", ls.map(\.mechanism)),
        ]))
    let ds = r.outcome.devices
    g.tables.append(
      Table(
        name: "devices",
        columns: [
          .string("device", ds.map(\.name)), .double("peak_memory_bytes", ds.map(\.peakMemoryBytes)),
          .double("compute_s", ds.map(\.computeSeconds)), .double("transfer_s", ds.map(\.transferSeconds)),
          .double("load_stall_s", ds.map(\.loadStallSeconds)), .double("idle_s", ds.map(\.idleSeconds)),
        ]))
    if let qs = r.outcome.queries {
      g.tables.append(
        Table(
          name: "queries",
          columns: [
            .int("request_id", qs.map { Int64($0.id) }), .string("served_by", qs.map(\.servedBy.rawValue)),
            .int("correct", qs.map { $0.correct.map { $0 ? 1 : 0 } ?? -1 }),
            .int("edge_prompt_tokens", qs.map { Int64($0.edgePromptTokens) }),
            .int("edge_completion_tokens", qs.map { Int64($0.edgeCompletionTokens) }),
            .int("cloud_prompt_tokens", qs.map { Int64($0.cloudPromptTokens) }),
            .int("cloud_completion_tokens", qs.map { Int64($0.cloudCompletionTokens) }),
            .double("bytes_to_cloud", qs.map(\.bytesToCloud)), .double("bytes_from_cloud", qs.map(\.bytesFromCloud)),
          ]))
      var rid: [Int64] = []
      var vix: [Int64] = []
      var proposed: [Int64] = []
      var accepted: [Int64] = []
      for q in qs {
        for (k, (p, a)) in zip(q.proposed, q.accepted).enumerated() {
          rid.append(Int64(q.id))
          vix.append(Int64(k))
          proposed.append(Int64(p))
          accepted.append(Int64(a))
        }
      }
      g.tables.append(
        Table(
          name: "verifications",
          columns: [
            .int("request_id", rid), .int("verification", vix), .int("proposed", proposed),
            .int("accepted", accepted),
          ]))
    }
    if let ev = r.outcome.events {
      g.tables.append(
        Table(
          name: "events",
          columns: [
            .string("kind", ev.map(\.kind.rawValue)), .string("device", ev.map(\.device)),
            .string("peer", ev.map { $0.peer ?? "" }), .int("stage", ev.map { Int64($0.stage) }),
            .int("batch", ev.map { Int64($0.batch) }), .int("layer", ev.map { Int64($0.layer ?? -1) }),
            .double("start_s", ev.map(\.start)), .double("end_s", ev.map(\.end)),
          ]))
    }
    return g
  }

  // MARK: Decoding

  /// A whole number read back from a file; anything else (a fraction, NaN, out of range) is `otherwise`.
  static func whole(_ d: Double?, otherwise: Int = 0) -> Int {
    d.flatMap { $0.isFinite ? Int(exactly: $0.rounded(.towardZero)) : nil } ?? otherwise
  }

  static func decode(_ root: Group, path: String) throws -> ResultsFile {
    let a = root.attributes
    func str(_ k: String) -> String { a[k]?.stringValue ?? "" }
    func int(_ k: String) -> Int64 {
      if case .int(let i)? = a[k] { return i }
      return Int64(whole(a[k]?.doubleValue))
    }
    guard a["schema_version"] != nil, a["experiment"] != nil else {
      throw ResultsError(
        .notResultsFile, path: path,
        reason: "an HDF5 file, but not an EdgeLab results file (no schema_version/experiment attributes)")
    }
    let known: Set<String> = [
      "experiment", "spec_json", "toolkit_version", "git_commit", "git_dirty", "git_diff", "host",
      "started_at", "finished_at", "seed", "backend", "runs_total", "runs_written", "complete",
      "schema_version",
    ]
    var extra: [String: String] = [:]
    for (k, v) in a where !known.contains(k) { extra[k] = v.stringValue ?? v.doubleValue.map(formatNumber) ?? "" }
    let info = FileInfo(
      experiment: str("experiment"), specJSON: str("spec_json"), toolkitVersion: str("toolkit_version"),
      gitCommit: str("git_commit"), gitDirty: int("git_dirty") != 0, gitDiff: str("git_diff"), host: str("host"),
      startedAt: str("started_at"), finishedAt: str("finished_at"), seed: UInt64(bitPattern: int("seed")),
      backend: str("backend"), runsTotal: Int(int("runs_total")), complete: int("complete") != 0, extra: extra)
    var runs: [RunRecord] = []
    for (_, g) in (root.groups["runs"]?.groups ?? [:]).sorted(by: { $0.key < $1.key }) {
      runs.append(try decodeRun(g, path: path))
    }
    return ResultsFile(info: info, runs: runs, tables: root.tables.filter { $0.name != "summary" })
  }

  static func decodeRun(_ g: Group, path: String) throws -> RunRecord {
    let a = g.attributes
    func int(_ k: String) -> Int {
      if case .int(let i)? = a[k] { return Int(i) }
      return whole(a[k]?.doubleValue)
    }
    func str(_ k: String) -> String { a[k]?.stringValue ?? "" }
    var params: [RunParameter] = []
    if let data = str("params_json").data(using: .utf8),
      let triples = try? JSONCoding.decoder.decode([[String]].self, from: data)
    {
      for t in triples where t.count == 3 {
        let value = (try? JSONCoding.decoder.decode(JSONValue.self, from: Data(t[2].utf8))) ?? .string(t[2])
        params.append(RunParameter(label: t[0], path: t[1], value: value))
      }
    }
    let plan =
      str("plan_json").isEmpty ? nil : try? JSONCoding.decoder.decode(Plan.self, from: Data(str("plan_json").utf8))
    var facts: [String: JSONValue] = [:]
    for (k, v) in a where k.hasPrefix("fact.") {
      switch v {
      case .double(let d): facts[String(k.dropFirst(5))] = .number(d)
      case .int(let i): facts[String(k.dropFirst(5))] = .number(Double(i))
      case .string(let s): facts[String(k.dropFirst(5))] = .string(s)
      }
    }
    var requests: [RequestRecord] = []
    if let t = g.table("requests") {
      for r in 0..<t.rowCount {
        func d(_ c: String) -> Double? { t.column(c)?.double(r).flatMap { $0.isNaN ? nil : $0 } }
        // Whole numbers read back from a file: anything else counts as 0 rather than trapping.
        func i(_ c: String) -> Int { whole(d(c)) }
        requests.append(
          RequestRecord(
            id: i("id"), arrival: t.column("arrival_s")?.double(r) ?? .nan, firstToken: d("first_token_s"),
            completion: d("completion_s"), promptTokens: i("prompt_tokens"), outputTokens: i("output_tokens")))
      }
    }
    if let t = g.table("tokens"), let rid = t.column("request_id"), let time = t.column("time_s") {
      let index = Dictionary(uniqueKeysWithValues: requests.enumerated().map { ($1.id, $0) })
      for r in 0..<t.rowCount {
        if let i = index[whole(rid.double(r), otherwise: -1)], let v = time.double(r) {
          requests[i].tokenTimes.append(v)
        }
      }
    }
    var links: [LinkRecord] = []
    if let t = g.table("links") {
      for r in 0..<t.rowCount {
        links.append(
          LinkRecord(
            from: t.column("from")?.text(r) ?? "", to: t.column("to")?.text(r) ?? "",
            bytes: t.column("bytes")?.double(r) ?? 0,
            messages: whole(t.column("messages")?.double(r)), busySeconds: t.column("busy_s")?.double(r) ?? 0,
            mechanism: t.column("mechanism")?.text(r) ?? ""))
      }
    }
    var devices: [DeviceRecord] = []
    if let t = g.table("devices") {
      for r in 0..<t.rowCount {
        func d(_ c: String) -> Double { t.column(c)?.double(r) ?? 0 }
        devices.append(
          DeviceRecord(
            name: t.column("device")?.text(r) ?? "", peakMemoryBytes: d("peak_memory_bytes"),
            computeSeconds: d("compute_s"),
            transferSeconds: d("transfer_s"), loadStallSeconds: d("load_stall_s"), idleSeconds: d("idle_s")))
      }
    }
    var stages: [StageRecord] = []
    if let t = g.table("stages") {
      for r in 0..<t.rowCount {
        func i(_ c: String) -> Int { whole(t.column(c)?.double(r)) }
        stages.append(
          StageRecord(
            index: i("stage"), device: t.column("device")?.text(r) ?? "", firstLayer: i("first_layer"),
            endLayer: i("end_layer"),
            offloadedLayers: i("offloaded_count"), computeSeconds: t.column("compute_s")?.double(r) ?? 0,
            microBatches: i("micro_batches")))
      }
    }
    var events: [TimelineEvent]?
    if let t = g.table("events") {
      var ev: [TimelineEvent] = []
      ev.reserveCapacity(t.rowCount)
      for r in 0..<t.rowCount {
        func i(_ c: String) -> Int { whole(t.column(c)?.double(r), otherwise: -1) }
        let peer = t.column("peer")?.text(r) ?? ""
        let layer = i("layer")
        ev.append(
          TimelineEvent(
            TimelineEvent.Kind(rawValue: t.column("kind")?.text(r) ?? "") ?? .compute,
            device: t.column("device")?.text(r) ?? "", peer: peer.isEmpty ? nil : peer, stage: i("stage"),
            batch: i("batch"), layer: layer < 0 ? nil : layer, start: t.column("start_s")?.double(r) ?? .nan,
            end: t.column("end_s")?.double(r) ?? .nan))
      }
      events = ev
    }
    var queries: [QueryRecord]?
    if let t = g.table("queries") {
      var qs: [QueryRecord] = []
      var index: [Int: Int] = [:]
      for r in 0..<t.rowCount {
        func i(_ c: String) -> Int { whole(t.column(c)?.double(r)) }
        let id = i("request_id")
        index[id] = qs.count
        qs.append(
          QueryRecord(
            id: id, servedBy: QueryRecord.Server(rawValue: t.column("served_by")?.text(r) ?? "") ?? .cloud,
            correct: i("correct") < 0 ? nil : i("correct") == 1, edgePromptTokens: i("edge_prompt_tokens"),
            edgeCompletionTokens: i("edge_completion_tokens"), cloudPromptTokens: i("cloud_prompt_tokens"),
            cloudCompletionTokens: i("cloud_completion_tokens"),
            bytesToCloud: t.column("bytes_to_cloud")?.double(r) ?? 0,
            bytesFromCloud: t.column("bytes_from_cloud")?.double(r) ?? 0))
      }
      if let v = g.table("verifications") {
        for r in 0..<v.rowCount {
          func i(_ c: String) -> Int { whole(v.column(c)?.double(r), otherwise: -1) }
          guard let k = index[i("request_id")] else { continue }
          qs[k].proposed.append(max(0, i("proposed")))
          qs[k].accepted.append(max(0, i("accepted")))
        }
      }
      queries = qs
    }
    let message = str("message")
    var outcome = RunOutcome(
      status: RunStatus(rawValue: str("status")) ?? .failed, message: message.isEmpty ? nil : message,
      requests: requests,
      links: links, devices: devices, stages: stages, wallSeconds: a["wall_s"]?.doubleValue ?? 0, facts: facts)
    outcome.events = events
    outcome.queries = queries
    return RunRecord(
      index: int("index"), point: int("point"), algorithm: str("algorithm"), label: str("label"),
      repetition: int("repetition"), seed: UInt64(bitPattern: Int64(int("seed"))), key: str("key"), parameters: params,
      plan: plan, outcome: outcome)
  }
}
