// Per-channel codebook lookup: index code -> integer level, PE lanes per beat.
// Channel c = fold*PE + lane uses table c (or table 0 if SHARED); an index >= L
// saturates to L-1. The tables are constants (TABLE parameter, flat, entry
// (c*L + k) at bits [(c*L+k)*OBITS +: OBITS]), read as LUT ROMs into an output
// register whose valid comes from a flip-flop.
// Written for the project (hw/custom_ops/codebook_lookup.py): FINN's Lookup is an
// HLS embedding gather (one index -> EmbeddingDim values), not a per-channel
// codebook, and has no RTL variant.
module codebook_lookup_axi #(
	parameter int unsigned PE = 1,
	parameter int unsigned FOLDS = 1,   // beats per vector (C / PE)
	parameter int unsigned IBITS = 6,   // index code width (unsigned)
	parameter int unsigned OBITS = 8,   // level width
	parameter int unsigned L = 64,      // levels per table
	parameter bit  SHARED = 0,          // one table for all channels
	parameter int unsigned NTAB = SHARED ? 1 : FOLDS*PE,
	parameter logic [NTAB*L*OBITS-1:0]  TABLE = '0
)(
	input  logic  clk,
	input  logic  rst,

	input  logic [PE*IBITS-1:0]  idat,
	input  logic  ivld,
	output logic  irdy,

	output logic [PE*OBITS-1:0]  odat,
	output logic  ovld,
	input  logic  ordy
);
	localparam int unsigned  CW = FOLDS > 1 ? $clog2(FOLDS) : 1;

	logic [CW-1:0]  Fold = '0;
	logic [PE*OBITS-1:0]  ODat = '0;
	logic  OVld = 1'b0;
	assign irdy = !OVld || ordy;
	uwire  take = ivld && irdy;

	uwire [PE*OBITS-1:0]  lvl;
	for(genvar i = 0; i < PE; i++) begin : genLane
		// Lane i reads the tables of channels i, PE+i, 2*PE+i, ...: a constant ROM.
		uwire [IBITS-1:0]  idx = idat[i*IBITS +: IBITS];
		uwire [31:0]  k = (32'(idx) >= L) ? L-1 : 32'(idx);  // saturate to L-1
		uwire [31:0]  tab = SHARED ? 0 : 32'(Fold)*PE + i;
		assign lvl[i*OBITS +: OBITS] = TABLE[(tab*L + k)*OBITS +: OBITS];
	end : genLane

	always_ff @(posedge clk) begin
		if(rst) begin
			Fold <= '0;
			OVld <= 1'b0;
		end
		else begin
			if(irdy)  OVld <= ivld;
			if(take) begin
				ODat <= lvl;
				Fold <= (Fold == CW'(FOLDS-1)) ? '0 : Fold + 1;
			end
		end
	end
	assign odat = ODat;
	assign ovld = OVld;

endmodule : codebook_lookup_axi
