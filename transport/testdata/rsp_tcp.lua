-- rsp_tcp.lua: ASAP (RFC 5352) and ENRP (RFC 5353) over TCP for tshark and
-- Wireshark, as the registrar's transport package frames them.
--
--   tshark -X lua_script:rsp_tcp.lua -r capture.pcapng
--   (Wireshark: copy into the personal Lua plugins folder)
--
-- Messages travel back to back; each carries its length (whole message, in
-- bytes) as a big-endian 16-bit value at offset 2. This plugin reassembles
-- them with dissect_tcp_pdus, so messages split over TCP segments or
-- coalesced into one decode, and hands each to the ASAP or ENRP dissector
-- registered for SCTP PPID 11 or 12 (neither is registered by name).
-- In "mux" streams (PE data channels) a message starting with 0xff is an
-- application data frame: 0xff 0x00 len16 ppid32 payload.
--
-- Ports: asaptcp on TCP 3863 and enrptcp on TCP 9901. Other ports: change
-- the "TCP ports" preference (-o asaptcp.ports:3863,5000) or use Decode As
-- (-d tcp.port==5000,asaptcp).

local tcp_port = DissectorTable.get("tcp.port")
local sctp_ppi = DissectorTable.get("sctp.ppi")

local function register(name, desc, ppid, default_port)
	local proto = Proto(name, desc)
	local inner = sctp_ppi:get_dissector(ppid)

	local f_ppid = ProtoField.uint32(name .. ".data_ppid", "Data frame PPID")
	local f_len = ProtoField.uint16(name .. ".data_length", "Data frame length")
	local f_data = ProtoField.bytes(name .. ".data", "Data")
	proto.fields = { f_ppid, f_len, f_data }

	proto.prefs.ports = Pref.range("TCP ports", tostring(default_port),
		"TCP ports that carry " .. desc, 65535)

	local function pdu_length(tvb, pinfo, offset)
		return tvb(offset + 2, 2):uint()
	end

	local function dissect_pdu(tvb, pinfo, tree)
		if tvb(0, 1):uint() == 0xff and tvb:len() >= 8 then
			local t = tree:add(proto, tvb(), "RSerPool mux data frame")
			t:add(f_len, tvb(2, 2))
			t:add(f_ppid, tvb(4, 4))
			if tvb:len() > 8 then
				t:add(f_data, tvb(8))
			end
			return tvb:len()
		end
		return inner:call(tvb, pinfo, tree)
	end

	function proto.dissector(tvb, pinfo, tree)
		dissect_tcp_pdus(tvb, tree, 4, pdu_length, dissect_pdu)
		return tvb:len()
	end

	local ports = tostring(default_port)
	tcp_port:add(ports, proto)
	tcp_port:add_for_decode_as(proto)

	function proto.prefs_changed()
		local want = tostring(proto.prefs.ports)
		if want ~= ports then
			tcp_port:remove(ports, proto)
			ports = want
			tcp_port:add(ports, proto)
		end
	end
end

register("asaptcp", "ASAP over TCP", 11, 3863)
register("enrptcp", "ENRP over TCP", 12, 9901)
