// Elementwise integer addition of two AXI streams (PE lanes per beat), exact for
// any widths and signedness: each lane's operands are extended to OBITS before the
// add, and OBITS holds every possible sum (checked in Python). The two inputs are
// joined: both are taken in the same cycle, only when both are valid and the output
// register is free. Valid from flip-flops, readies from valids and the out ready.
// Written for the project (hw/custom_ops/elementwise_add.py): FINN's own
// ElementwiseAdd_rtl int/int path needs equal widths and signedness (the residual
// add of UINT and INT codes has neither) and is gated to Versal parts.
module eltwise_add_axi #(
	parameter int unsigned PE = 1,
	parameter int unsigned ABITS = 8,
	parameter int unsigned BBITS = 8,
	parameter int unsigned OBITS = 9,
	parameter bit  A_SIGNED = 1,
	parameter bit  B_SIGNED = 1
)(
	input  logic  clk,
	input  logic  rst,

	input  logic [PE*ABITS-1:0]  adat,
	input  logic  avld,
	output logic  ardy,
	input  logic [PE*BBITS-1:0]  bdat,
	input  logic  bvld,
	output logic  brdy,

	output logic [PE*OBITS-1:0]  odat,
	output logic  ovld,
	input  logic  ordy
);
	logic [PE*OBITS-1:0]  ODat = '0;
	logic  OVld = 1'b0;
	uwire  free = !OVld || ordy;
	uwire  take = free && avld && bvld;
	assign ardy = take;
	assign brdy = take;

	uwire [PE*OBITS-1:0]  sum;
	for(genvar i = 0; i < PE; i++) begin : genLane
		uwire [ABITS-1:0]  a = adat[i*ABITS +: ABITS];
		uwire [BBITS-1:0]  b = bdat[i*BBITS +: BBITS];
		// (W+1)-bit signed copies make one signed add for every signedness mix.
		uwire signed [ABITS:0]  sa = A_SIGNED ? {a[ABITS-1], a} : {1'b0, a};
		uwire signed [BBITS:0]  sb = B_SIGNED ? {b[BBITS-1], b} : {1'b0, b};
		uwire signed [OBITS-1:0]  ea = OBITS'(sa);
		uwire signed [OBITS-1:0]  eb = OBITS'(sb);
		assign sum[i*OBITS +: OBITS] = ea + eb;
	end : genLane

	always_ff @(posedge clk) begin
		if(rst)  OVld <= 1'b0;
		else begin
			if(free)  OVld <= avld && bvld;
			if(take)  ODat <= sum;
		end
	end
	assign odat = ODat;
	assign ovld = OVld;

endmodule : eltwise_add_axi
