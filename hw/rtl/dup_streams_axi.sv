// AXI-stream fork: one input beat is offered to N outputs; each output takes it
// independently (per-output "taken" flags) and the next input beat is accepted only
// once every output has taken the current one. Outputs stall independently.
// Valid outputs come from flip-flops (never from a ready), so a ready may depend on
// any valid downstream without forming a combinational loop; in ready depends
// combinationally on the out readies (AXI allows ready to depend on valid/ready).
// Written for the project (hw/custom_ops/duplicate_streams.py): FINN 1.6.1 has only
// DuplicateStreams_hls.
module dup_streams_axi #(
	parameter int unsigned N = 2,  // output streams, >= 2
	parameter int unsigned W = 8   // (padded) data width
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
	logic [W-1:0]  Dat = '0;
	logic  Full = 1'b0;
	logic [N-1:0]  Taken = '0;  // output i has taken the beat held in Dat

	// Output i is done with the held beat: taken before, or taking it now.
	uwire [N-1:0]  done = Taken | (ovld & ordy);
	uwire  all_done = &done;
	assign irdy = !Full || all_done;

	always_ff @(posedge clk) begin
		if(rst) begin
			Full  <= 1'b0;
			Taken <= '0;
		end
		else begin
			if(irdy) begin
				Full  <= ivld;
				Taken <= '0;
				if(ivld)  Dat <= idat;
			end
			else  Taken <= done;
		end
	end

	for(genvar i = 0; i < N; i++) begin : genOut
		assign odat[i] = Dat;
		assign ovld[i] = Full && !Taken[i];
	end : genOut

endmodule : dup_streams_axi
