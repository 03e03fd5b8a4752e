import Testing

@testable import App

extension KMeans.Points {
    /// From one array per point (each the same number of features, `nil` for a missing value), as the tests write
    /// their points; the server builds the flat buffer from a query's rows itself.
    init(_ points: [[Double?]]) {
        let width = points.first?.count ?? 0
        precondition(points.allSatisfy { $0.count == width }, "the same number of features for every point")
        self.init(width: width, count: points.count, values: points.flatMap { point in point.map { $0 ?? .nan } })
    }
}

@Suite("k-means")
struct KMeansTests {
    /// Three well separated groups of sizes 30, 20 and 10 around (0, 0), (100, 5) and (50, 200), with a little
    /// spread, interleaved so that input order says nothing of the groups.
    static func groups() -> (points: KMeans.Points, group: [Int]) {
        let centres: [(Double, Double)] = [(0, 0), (100, 5), (50, 200)]
        let sizes = [30, 20, 10]
        var points: [[Double?]] = []
        var group: [Int] = []
        for index in 0..<30 {
            for which in 0..<3 where index < sizes[which] {
                let jitter = Double((index * 7 + which * 3) % 5) - 2
                points.append([centres[which].0 + jitter, centres[which].1 - jitter / 2])
                group.append(which)
            }
        }
        return (KMeans.Points(points), group)
    }

    @Test("obvious groups become the clusters, numbered by size")
    func obviousGroups() {
        let (points, group) = Self.groups()
        let result = KMeans(k: 3, maxIterations: 100).cluster(points)
        #expect(result.assignments.count == 60)
        // The largest group is cluster 1, the next 2, the smallest 3.
        for (index, assignment) in result.assignments.enumerated() {
            #expect(assignment.cluster == group[index] + 1, "point \(index)")
        }
        // Distances are in standard deviations: small within such tight groups.
        #expect(result.assignments.allSatisfy { $0.distance < 0.1 })
        #expect(result.iterations < 10)
    }

    @Test("the same points give the same clusters; another seed may draw other centres but finds the same groups")
    func deterministic() {
        let (points, _) = Self.groups()
        let first = KMeans(k: 3, maxIterations: 100).cluster(points)
        let second = KMeans(k: 3, maxIterations: 100).cluster(points)
        #expect(first.assignments == second.assignments)
        #expect(first.centres == second.centres)
        let reseeded = KMeans(k: 3, maxIterations: 100, seed: 7).cluster(points)
        #expect(reseeded.assignments.map(\.cluster) == first.assignments.map(\.cluster))
    }

    @Test("features are standardised: a feature in large units does not drown one in small units")
    func standardised() {
        // Two groups that differ only in the second feature (0 or 1); the first is large noise, the same for both.
        let points: [[Double?]] = (0..<40).map { index in [Double(index % 4) * 10, index < 20 ? 0 : 1] }
        let result = KMeans(k: 2, maxIterations: 100).cluster(KMeans.Points(points))
        let clusters = result.assignments.map(\.cluster)
        #expect(Set(clusters[..<20]).count == 1 && Set(clusters[20...]).count == 1 && clusters[0] != clusters[20])
        // [1, 3, 5]: mean 3, standard deviation √(8/3); [missing, 4, 4]: constant, so 0 throughout.
        let scaled = KMeans.standardised(KMeans.Points([[1, nil], [3, 4], [5, 4]]))
        let expected: [Double] = [-2 / (8.0 / 3).squareRoot(), 0, 0, 0, 2 / (8.0 / 3).squareRoot(), 0]
        #expect(scaled.width == 2 && scaled.count == 3)
        #expect(zip(scaled.values, expected).allSatisfy { abs($0 - $1) < 1e-12 })
    }

    @Test("fewer distinct points than k give fewer clusters; no points give none")
    func fewPoints() {
        let result = KMeans(k: 4, maxIterations: 10).cluster(KMeans.Points([[1, 1], [1, 1], [5, 5]]))
        #expect(result.centres.count == 2)
        #expect(result.assignments.map(\.cluster) == [1, 1, 2])
        #expect(KMeans(k: 3, maxIterations: 10).cluster(KMeans.Points([])).assignments.isEmpty)
        let one = KMeans(k: 3, maxIterations: 10).cluster(KMeans.Points([[2, nil]]))
        #expect(one.assignments == [KMeans.Assignment(cluster: 1, distance: 0)])
    }

    @Test("SplitMix64 gives its reference sequence")
    func generator() {
        // The first outputs for seed 1234567 of the reference implementation (Vigna, splitmix64.c).
        var generator = SplitMix64(seed: 1_234_567)
        #expect(
            [generator.next(), generator.next(), generator.next()] == [
                6_457_827_717_110_365_317, 3_203_168_211_198_807_973, 9_817_491_932_198_370_423,
            ]
        )
    }
}
