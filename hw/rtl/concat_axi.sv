// AXI-stream concatenation along the channel axis, FINN's StreamingConcat beat
// order: for every vector, all FOLDS[0] beats of input 0, then FOLDS[1] beats of
// input 1, ... Each element of input i (IN_BITS[i] bits, IN_SIGNED[i]) is sign- or
// zero-extended to OBITS. Output register with valid from flip-flops; the selected
// input's ready follows the output register's free slot.
// Written for the project (hw/custom_ops/streaming_concat.py): FINN 1.6.1 has only
// StreamingConcat_hls.
module concat_axi #(
	parameter int unsigned N = 2,         // input streams
	parameter int unsigned SIMD = 1,      // elements per beat
	parameter int unsigned IW_MAX = 8,    // widest input element
	parameter int unsigned OBITS = 8,     // output element width
	parameter logic [N-1:0][31:0] IN_BITS = {N{32'd8}}, // element width of input i
	parameter logic [N-1:0]       IN_SIGNED = '0, // input i is signed
	parameter logic [N-1:0][31:0] FOLDS = {N{32'd1}}     // beats per vector of input i
)(
	input  logic  clk,
	input  logic  rst,

	input  logic [N-1:0][SIMD*IW_MAX-1:0]  idat,  // input i in its low SIMD*IN_BITS[i] bits
	input  logic [N-1:0]  ivld,
	output logic [N-1:0]  irdy,

	output logic [SIMD*OBITS-1:0]  odat,
	output logic  ovld,
	input  logic  ordy
);
	localparam int unsigned  SW = N > 1 ? $clog2(N) : 1;
	function automatic int unsigned max_fold();
		automatic int unsigned  m = 1;
		for(int unsigned i = 0; i < N; i++)  if(FOLDS[i] > m)  m = FOLDS[i];
		return  m;
	endfunction : max_fold
	localparam int unsigned  CW = $clog2(max_fold() + 1);

	// Every input's beat, each element extended to OBITS.
	logic [N-1:0][SIMD*OBITS-1:0]  ext;
	for(genvar i = 0; i < N; i++) begin : genIn
		localparam int unsigned  IW = IN_BITS[i];
		for(genvar j = 0; j < SIMD; j++) begin : genElem
			uwire [IW-1:0]  e = idat[i][j*IW +: IW];
			// (IW+1)-bit signed copy: the assignment below then sign-extends it.
			/* verilator lint_off UNUSEDSIGNAL */  // its top bit is unused when OBITS == IW
			uwire signed [IW:0]  s = IN_SIGNED[i] ? {e[IW-1], e} : {1'b0, e};
			/* verilator lint_on UNUSEDSIGNAL */
			assign ext[i][j*OBITS +: OBITS] = OBITS'(s);
		end : genElem
	end : genIn

	logic [SW-1:0]  Sel = '0;  // input now being forwarded
	logic [CW-1:0]  Cnt = '0;  // beats of it forwarded in this vector
	logic [SIMD*OBITS-1:0]  ODat = '0;
	logic  OVld = 1'b0;

	uwire  free = !OVld || ordy;
	uwire  take = free && ivld[Sel];
	always_comb begin
		irdy = '0;
		irdy[Sel] = free;
	end

	always_ff @(posedge clk) begin
		if(rst) begin
			Sel  <= '0;
			Cnt  <= '0;
			OVld <= 1'b0;
		end
		else begin
			if(free)  OVld <= ivld[Sel];
			if(take) begin
				ODat <= ext[Sel];
				if(Cnt == CW'(FOLDS[Sel] - 1)) begin
					Cnt <= '0;
					Sel <= (Sel == SW'(N-1)) ? '0 : Sel + 1;
				end
				else  Cnt <= Cnt + 1;
			end
		end
	end
	assign odat = ODat;
	assign ovld = OVld;

endmodule : concat_axi
