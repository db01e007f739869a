// AXI-stream split along the channel axis, FINN's StreamingSplit beat order: for
// every vector, the first FOLDS[0] beats go to output 0, the next FOLDS[1] beats
// to output 1, ... One register per output (valid from flip-flops); the input is
// accepted when the register of the output it goes to is free, so outputs stall
// independently.
// Written for the project (hw/custom_ops/streaming_split.py): FINN 1.6.1 has only
// StreamingSplit_hls.
module split_axi #(
	parameter int unsigned N = 2,   // output streams
	parameter int unsigned W = 8,   // data width (elements of one beat)
	parameter logic [N-1:0][31:0] FOLDS = {N{32'd1}} // beats per vector of output i
)(
	input  logic  clk,
	input  logic  rst,

	input  logic [W-1:0]  idat,
	input  logic  ivld,
	output logic  irdy,

	output logic [N-1:0][W-1:0]  odat,
	output logic [N-1:0]  ovld,
	input  logic [N-1:0]  ordy
);
	localparam int unsigned  SW = N > 1 ? $clog2(N) : 1;
	function automatic int unsigned max_fold();
		automatic int unsigned  m = 1;
		for(int unsigned i = 0; i < N; i++)  if(FOLDS[i] > m)  m = FOLDS[i];
		return  m;
	endfunction : max_fold
	localparam int unsigned  CW = $clog2(max_fold() + 1);

	logic [SW-1:0]  Sel = '0;  // output the next input beat goes to
	logic [CW-1:0]  Cnt = '0;
	logic [N-1:0][W-1:0]  ODat = '0;
	logic [N-1:0]  OVld = '0;

	uwire [N-1:0]  free = ~OVld | ordy;
	assign irdy = free[Sel];
	uwire  take = ivld && irdy;

	always_ff @(posedge clk) begin
		if(rst) begin
			Sel  <= '0;
			Cnt  <= '0;
			OVld <= '0;
		end
		else begin
			OVld <= OVld & ~ordy;
			if(take) begin
				ODat[Sel] <= idat;
				OVld[Sel] <= 1'b1;
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

endmodule : split_axi
